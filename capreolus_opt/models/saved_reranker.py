"""A trained reranker reloaded from its workdir, and reranking a first-stage run with it.

Training (``training/selection.py``) keeps the best model by the dev metric in
``<workdir>/best/`` (``storage/workdir_layout.py``): ``reranker.json`` (the builder's arguments
and maximum lengths), its weights once, and ``vocab.txt`` for a word-level encoder. A model the
manifest rebuilds (``build_reranker``) has its weights in ``model.weights.npz`` (every variable
by path), restored with ``training.weights.restore_weights``, which fails loudly on any missing,
extra or differently shaped variable. A ``model_builder``'s model such as a BERT cross- or
dual-encoder is ``model.keras``, the whole model with its weights (its input layer carries the
preset's WordPiece vocabulary and settings, so the tokenizer comes back with it); Keras refuses
a file whose weights do not fit the model it describes. A ``model.weights.npz`` beside a
``model.keras`` (workdirs written before the weights were stored once) holds the same weights
and is not read. ``rerank_run`` scores with the same tokenizer and lengths as training, and
with the first-stage interpolation weight chosen on dev when training interpolated.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from capreolus_opt.data.errors import DataError
from capreolus_opt.data.tokenizer import Vocabulary
from capreolus_opt.data.trec.formats import read_run, read_topics
from capreolus_opt.data.trec.runfile import interpolate, top_k
from capreolus_opt.data.trec.store import tokenized_collection
from capreolus_opt.optional import MissingExtraError, require
from capreolus_opt.storage.workdir_layout import MODEL_FILE, Workdir


@dataclasses.dataclass
class SavedReranker:
    model: Any
    encoder: Vocabulary
    max_query_length: int
    max_doc_length: int
    best: dict[str, Any]


def load_reranker(workdir: str) -> SavedReranker:
    """The best model of the training run whose workdir is ``workdir``.

    Raises:
        ValueError: ``workdir`` holds no saved reranker, or its files do not match each other.
    """
    layout = Workdir(workdir)
    spec_path = layout.best_manifest
    if not os.path.isfile(spec_path):
        raise ValueError(
            f"{workdir} holds no saved reranker ({spec_path} is missing): only runs over "
            "TrecRerankingData keep their best model"
        )
    spec = _json_object(spec_path, ("max_query_length", "max_doc_length"))
    best_info = _json_object(layout.best_state, ("step",))  # read first: cheap, names a bad file
    model, encoder = _rebuild(spec, layout, spec_path)
    try:
        return SavedReranker(
            model=model,
            encoder=encoder,
            max_query_length=int(spec["max_query_length"]),
            max_doc_length=int(spec["max_doc_length"]),
            best=best_info,
        )
    except (TypeError, ValueError):
        raise ValueError(
            f"{spec_path}: max_query_length and max_doc_length must be integers, "
            f"got {spec['max_query_length']!r}, {spec['max_doc_length']!r}"
        ) from None


def _json_object(path: str, required: tuple[str, ...]) -> dict[str, Any]:
    """The JSON object in ``path`` holding ``required`` keys; ValueError naming the file."""
    if not os.path.isfile(path):
        raise ValueError(f"{path} is missing (the best model's folder is incomplete)")
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError included
        raise ValueError(f"{path} is unreadable (expected a JSON object): {err}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds {type(value).__name__}, expected a JSON object")
    missing = [key for key in required if key not in value]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    return value


def _rebuild(spec: dict, layout: Workdir, spec_path: str) -> tuple[Any, Any]:
    """``(model, encoder)`` as ``reranker.json`` says (``RerankingTask.export``), with the
    best model's weights."""
    best, vocab = layout.best, layout.best_vocab
    if spec.get("builder") == "build_reranker":
        from capreolus_opt.models.encoder import build_reranker
        from capreolus_opt.training.weights import restore_weights

        model = build_reranker(**spec["model"])
        # Every variable from the weights file, checked by path, shape and dtype.
        restore_weights(model, layout.best_weights)
        return model, Vocabulary.from_file(vocab)
    if spec.get("builder") == "keras":
        import keras

        hint = ""
        try:  # a keras_hub backbone inside (BERT) must be registered before loading
            require("keras_hub", "hub")
            import capreolus_opt.models.bert_encoder  # noqa: F401  (registers BertEncoder)
        except MissingExtraError as exc:
            hint = f" (a BERT model needs the `hub` extra: {exc})"
        from capreolus_opt.models import dual_encoder  # noqa: F401 -- registers its layers
        from capreolus_opt.models.bert import tokenizer_from_model
        from capreolus_opt.storage.paths import check_file_name, safe_join

        try:  # a value read from a file: it must name a file inside best/
            path = safe_join(best, check_file_name(spec.get("model_file"), "model_file"))
        except ValueError as err:
            raise ValueError(f"{spec_path}: {err}") from None
        try:
            model = keras.saving.load_model(path, compile=False)
        except (OSError, TypeError, ValueError, zipfile.BadZipFile) as err:  # missing, corrupt
            raise ValueError(f"{path} cannot be loaded{hint}: {err}") from None
        encoder = tokenizer_from_model(model)  # the preset's WordPiece travels with the model
        if encoder is None:
            if not os.path.isfile(vocab):
                raise ValueError(f"{path} carries no tokenizer and {vocab} is missing")
            encoder = Vocabulary.from_file(vocab)
        return model, encoder
    raise ValueError(
        f"{spec_path}: the model came from a custom RerankingTask.model_builder and was not "
        f"saved whole ({MODEL_FILE}), so rerank cannot rebuild it without its gin configuration"
    )


def compiled_scorer(model: Any, query_length: int, document_length: int) -> Callable:
    """``score(query [B, Lq], document [B, Ld]) -> [B]``: ``model`` in inference mode as one
    ``tf.function`` traced once for any batch size (the last, shorter batch included), compiled
    by XLA (once per batch size).

    XLA fuses what graph mode runs op by op around the matrix products (the attention mask's
    selects, GELU, layer norm, the heads' transposes); ``benchmarks/pretrained_peer.py`` prints
    its pairs/s against PyTorch's. Scores agree with the uncompiled model within float32
    rounding (tested)."""
    import tensorflow as tf

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, query_length], tf.int32),
            tf.TensorSpec([None, document_length], tf.int32),
        ],
        reduce_retracing=True,
        jit_compile=True,
    )
    def score(query: tf.Tensor, document: tf.Tensor) -> tf.Tensor:
        return model({"query": query, "document": document}, training=False)

    return score


def rerank_run(
    reranker: SavedReranker,
    *,
    first_stage_run: str,
    topics: str,
    collection: str,
    k: int,
    batch_size: int = 256,
    cache_dir: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict[str, float]]:
    """Model scores of the top ``k`` candidates of every query of ``first_stage_run`` (mixed
    with the first-stage scores when the trained run chose an interpolation weight on dev),
    ``batch_size`` pairs per call of the compiled model (``compiled_scorer``); ``progress``
    is called with the pairs scored so far and their total, before the first batch and after
    each.

    Raises ``DataError`` for a malformed file, a query missing from ``topics`` or a document
    missing from ``collection``.
    """
    run = top_k(read_run(first_stage_run), k)
    texts = read_topics(topics)
    missing = sorted(q for q in run if q not in texts)
    if missing:
        raise DataError(
            first_stage_run,
            None,
            f"{len(missing)} queries are not in {topics}, e.g. {missing[0]!r}",
        )
    store = tokenized_collection(
        collection,
        encoder=reranker.encoder,
        max_length=reranker.max_doc_length,
        cache_dir=cache_dir,
    )
    qids = [q for q in sorted(run) for _ in run[q]]
    docids = [d for q in sorted(run) for d in run[q]]
    rows = store.rows(docids)
    if (rows < 0).any():
        i = int(np.argmax(rows < 0))
        raise DataError(
            first_stage_run, None, f"document {docids[i]!r} (query {qids[i]!r}) is not in "
            f"{collection}"
        )  # fmt: skip
    lq = reranker.max_query_length
    encoded = {q: reranker.encoder.encode(texts[q], max_length=lq) for q in run}
    scores = np.empty((len(qids),), np.float64)
    score = compiled_scorer(reranker.model, lq, int(store.tokens.shape[1]))
    if progress is not None:
        progress(0, len(qids))
    for start in range(0, len(qids), batch_size):
        stop = min(start + batch_size, len(qids))
        query = np.stack([encoded[q] for q in qids[start:stop]]).astype(np.int32)
        document = np.asarray(store.tokens[rows[start:stop]], np.int32)
        scores[start:stop] = np.asarray(score(query, document), np.float64)
        if progress is not None:
            progress(stop, len(qids))
    out: dict[str, dict[str, float]] = {}
    for qid, docid, score in zip(qids, docids, scores, strict=True):
        out.setdefault(qid, {})[docid] = float(score)
    weight = reranker.best.get("interpolation_weight")
    if weight is not None:  # as the recorded dev/test runs were made
        out = interpolate(out, run, float(weight))
    return out
