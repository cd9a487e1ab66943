"""A dual encoder built from a sentence-embedding checkpoint scores, before any training step,
exactly what transformers computes for that checkpoint used zero-shot: mean-pooled last hidden
states, L2-normalised, cosine. This is what makes the step-0 evaluation of a dual-encoder run the
checkpoint's zero-shot score."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("keras_hub")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")
torch = pytest.importorskip(
    "torch", reason="the reference encoder is transformers' PyTorch BertModel (test extra)"
)
transformers = pytest.importorskip("transformers")

from capreolus_opt.models.checkpoint import load_bert_checkpoint  # noqa: E402
from capreolus_opt.models.dual_encoder import build_dual_encoder  # noqa: E402
from tests.hf_checkpoints import make_tiny_hf_bert  # noqa: E402

QUERIES = ["deer park", "Café crème à Zürich", "rank the document", "hello world"]
DOCUMENTS = [
    "the deer park is a relevant document",
    "zurich cafe creme , naive resume !",
    "super ##cal query rank re ##rank",
    "東京大学 tensorflow keras bert",
]


def _reference_scores(folder, queries, documents):
    tok = transformers.AutoTokenizer.from_pretrained(str(folder), split_special_tokens=True)
    model = transformers.AutoModel.from_pretrained(str(folder)).eval()

    def embed(texts):
        batch = tok(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state.double()
        mask = batch["attention_mask"].unsqueeze(-1).double()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    return (embed(queries) * embed(documents)).sum(-1)


def test_step_zero_scores_equal_the_checkpoints_zero_shot_cosine(tmp_path):
    folder = make_tiny_hf_bert(tmp_path / "st", hidden_act="gelu")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    tokenizer = load_bert_checkpoint(str(folder)).tokenizer
    lq, ld = 12, 20
    query = tokenizer.encode_batch(QUERIES, max_length=lq).astype(np.int32)
    document = tokenizer.encode_batch(DOCUMENTS, max_length=ld).astype(np.int32)
    model = build_dual_encoder(
        vocab_size=len(tokenizer),
        query_length=lq,
        document_length=ld,
        pad_id=tokenizer.pad_id,
        preset=str(folder),
        pooling="auto",  # read from 1_Pooling/config.json: mean
    )
    got = np.asarray(model({"query": query, "document": document}, training=False))
    want = _reference_scores(folder, QUERIES, DOCUMENTS)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # Not a constant: the scores rank the pairs as the reference does.
    assert np.argsort(got).tolist() == np.argsort(want).tolist()
