"""Layer-wise learning-rate decay as ``AdamMultilr`` ``pattern_lrs``.

For an encoder of ``L`` transformer layers (0 = bottom) and ``decay`` in (0, 1]:

- head (``head_patterns``, e.g. the fresh scoring layer and BERT's pooler): ``base_lr``;
- transformer layer ``i``: ``base_lr * decay ** (L - i)`` (the top layer, ``i = L - 1``, gets
  ``base_lr * decay``);
- embeddings: ``base_lr * decay ** (L + 1)``, the lowest.

This is the BEiT / ELECTRA-style "layer-wise lr decay" (Clark et al. 2020, Bao et al. 2021)
with depth counted from the head. The default patterns match the variable paths of a keras_hub
``BertBackbone`` (``token_embedding/``, ``position_embedding/``, ``segment_embedding/``,
``embeddings_layer_norm/``, ``transformer_layer_<i>/``, ``pooled_dense/``) and this project's
``head/``; for ``models.encoder.build_reranker`` pass ``layer_pattern="^encoder/layer_{i}/"``,
``embedding_patterns=("^embedding/",)`` and ``head_patterns=("^head/", "^encoder/final_norm/")``.
Variables matched by no group fall back to the optimizer's ``learning_rate`` (set it to
``base_lr``).

Example (L = 2, base 1e-3, decay 0.5): head 1e-3, ``layer_1`` 5e-4, ``layer_0`` 2.5e-4,
embeddings 1.25e-4.
"""

from __future__ import annotations

from collections.abc import Sequence

BERT_EMBEDDING_PATTERNS = (
    r"^token_embedding/",
    r"^position_embedding/",
    r"^segment_embedding/",
    r"^embeddings_layer_norm/",
)
BERT_LAYER_PATTERN = r"^transformer_layer_{i}/"
BERT_HEAD_PATTERNS = (r"^head/", r"^pooled_dense/")


def layerwise_decay_pattern_lrs(
    *,
    base_lr: float,
    decay: float,
    num_layers: int,
    layer_pattern: str = BERT_LAYER_PATTERN,
    embedding_patterns: Sequence[str] = BERT_EMBEDDING_PATTERNS,
    head_patterns: Sequence[str] = BERT_HEAD_PATTERNS,
) -> list[dict]:
    """``pattern_lrs`` groups named ``head``, ``layer_<L-1>`` .. ``layer_0``, ``embeddings``
    (top to bottom) with the learning rates in the module docstring.

    ``layer_pattern`` must contain ``{i}``, replaced by each layer index. Empty
    ``head_patterns`` leaves the head to the optimizer's base ``learning_rate``.
    """
    if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive int. Received: {num_layers!r}")
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"decay must be in (0, 1]. Received: {decay!r}")
    if not base_lr >= 0.0:
        raise ValueError(f"base_lr must be >= 0. Received: {base_lr!r}")
    if "{i}" not in layer_pattern:
        raise ValueError(
            f"layer_pattern must contain '{{i}}' (the layer index). Received: {layer_pattern!r}"
        )
    if isinstance(embedding_patterns, str) or isinstance(head_patterns, str):
        raise TypeError("embedding_patterns and head_patterns must be sequences of regexes")
    groups: list[dict] = []
    if head_patterns:
        groups.append({"patterns": list(head_patterns), "lr": float(base_lr), "name": "head"})
    for i in reversed(range(num_layers)):
        groups.append(
            {
                "patterns": [layer_pattern.replace("{i}", str(i))],
                "lr": float(base_lr * decay ** (num_layers - i)),
                "name": f"layer_{i}",
            }
        )
    if embedding_patterns:
        groups.append(
            {
                "patterns": list(embedding_patterns),
                "lr": float(base_lr * decay ** (num_layers + 1)),
                "name": "embeddings",
            }
        )
    return groups
