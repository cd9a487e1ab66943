r"""Layer-wise learning-rate decay as ``AdamMultilr`` ``pattern_lrs``.

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

With ``as_lr_mult=True`` every group gets ``"lr_mult"`` instead of ``"lr"`` (the same numbers,
now multipliers of the optimizer's ``learning_rate``, e.g. a warm-up/decay schedule that then
drives every layer). ``no_decay_patterns`` (e.g. ``BERT_NO_DECAY_PATTERNS``: LayerNorm and biases)
put before each group ``<name>.no_decay``: its variables that also match one of these patterns,
at the same rate, with ``"weight_decay": 0.0``.

Several stacks (e.g. the vision and text towers of a dual encoder), each with its own depth:
``stacks=[{"name": "text", "layer_regex": r"^text/layer_(\d+)/", "num_layers": 12,
"embedding_patterns": ["^text/embed/"]}, {"name": "vision", ...}]``. The regex's one capture
group stands for the depth; for each layer ``i`` it is replaced by ``i`` (not followed by another
digit, so ``1`` never matches ``10``). Each stack decays from the shared head on its own:
``<name>.layer_<i>`` at ``base_lr * decay ** (L_stack - i)`` and ``<name>.embeddings`` at
``base_lr * decay ** (L_stack + 1)``. ``capreolus-opt groups`` previews the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from capreolus_opt.optimizer.bounded_regex import compile_bounded

BERT_EMBEDDING_PATTERNS = (
    r"^token_embedding/",
    r"^position_embedding/",
    r"^segment_embedding/",
    r"^embeddings_layer_norm/",
)
BERT_LAYER_PATTERN = r"^transformer_layer_{i}/"
BERT_HEAD_PATTERNS = (r"^head/", r"^pooled_dense/")
BERT_NO_DECAY_PATTERNS = (r"_norm/(gamma|beta)$", r"/bias$")


def layerwise_decay_pattern_lrs(
    *,
    base_lr: float,
    decay: float,
    num_layers: int | None = None,
    layer_pattern: str = BERT_LAYER_PATTERN,
    embedding_patterns: Sequence[str] = BERT_EMBEDDING_PATTERNS,
    head_patterns: Sequence[str] = BERT_HEAD_PATTERNS,
    stacks: Sequence[Mapping[str, Any]] | None = None,
    as_lr_mult: bool = False,
    no_decay_patterns: Sequence[str] = (),
) -> list[dict]:
    """``pattern_lrs`` groups named ``head``, ``layer_<L-1>`` .. ``layer_0``, ``embeddings``
    (top to bottom) with the learning rates in the module docstring.

    ``layer_pattern`` must contain ``{i}``, replaced by each layer index. Empty
    ``head_patterns`` leaves the head to the optimizer's base ``learning_rate``. With ``stacks``
    (instead of ``num_layers``/``layer_pattern``/``embedding_patterns``), each stack dict has
    ``name``, ``layer_regex`` (one capture group: the depth), ``num_layers`` and optional
    ``embedding_patterns``; its groups are named ``<name>.layer_<i>`` and ``<name>.embeddings``.
    ``as_lr_mult`` and ``no_decay_patterns``: module docstring.
    """
    if isinstance(no_decay_patterns, str):
        raise TypeError("no_decay_patterns must be a sequence of regexes")
    groups = _layer_groups(
        base_lr, decay, num_layers, layer_pattern, embedding_patterns, head_patterns, stacks
    )
    if as_lr_mult:
        groups = [{**{k: v for k, v in g.items() if k != "lr"}, "lr_mult": g["lr"]} for g in groups]
    if not no_decay_patterns:
        return groups
    either = "|".join(f"(?:{p})" for p in no_decay_patterns)
    out: list[dict] = []
    for group in groups:
        inside = "|".join(f"(?:{p})" for p in group["patterns"])
        both = f"^(?=.*?(?:{inside}))(?=.*?(?:{either}))"  # in the group AND no-decay
        out += [{**group, "name": f"{group['name']}.no_decay", "patterns": [both],
                 "weight_decay": 0.0}, group]  # fmt: skip
    return out


def _layer_groups(
    base_lr, decay, num_layers, layer_pattern, embedding_patterns, head_patterns, stacks
) -> list[dict]:
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"decay must be in (0, 1]. Received: {decay!r}")
    if not base_lr >= 0.0:
        raise ValueError(f"base_lr must be >= 0. Received: {base_lr!r}")
    if isinstance(embedding_patterns, str) or isinstance(head_patterns, str):
        raise TypeError("embedding_patterns and head_patterns must be sequences of regexes")
    groups: list[dict] = []
    if head_patterns:
        groups.append({"patterns": list(head_patterns), "lr": float(base_lr), "name": "head"})
    if stacks is not None:
        if num_layers is not None:
            raise ValueError("give either num_layers (one stack) or stacks, not both")
        if isinstance(stacks, Mapping | str) or not stacks:
            raise TypeError(f"stacks must be a non-empty list of stack dicts. Received: {stacks!r}")
        names = set()
        for i, stack in enumerate(stacks):
            name, layers, regex, embeddings = _check_stack(stack, f"stacks[{i}]", names)
            patterns = [_at_depth(regex, d) for d in range(layers)]
            groups += _tower(base_lr, decay, layers, patterns, embeddings, f"{name}.")
        return groups
    _check_num_layers(num_layers, "num_layers")
    if "{i}" not in layer_pattern:
        raise ValueError(
            f"layer_pattern must contain '{{i}}' (the layer index). Received: {layer_pattern!r}"
        )
    patterns = [layer_pattern.replace("{i}", str(i)) for i in range(num_layers)]
    return groups + _tower(base_lr, decay, num_layers, patterns, list(embedding_patterns), "")


def _tower(
    base_lr: float, decay: float, layers: int, patterns: list[str], embeddings: list, prefix: str
) -> list[dict]:
    groups = [
        {"patterns": [patterns[i]], "lr": float(base_lr * decay ** (layers - i)),
         "name": f"{prefix}layer_{i}"}
        for i in reversed(range(layers))
    ]  # fmt: skip
    if embeddings:
        groups.append(
            {
                "patterns": list(embeddings),
                "lr": float(base_lr * decay ** (layers + 1)),
                "name": f"{prefix}embeddings",
            }
        )
    return groups


def _check_num_layers(value: Any, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{where} must be a positive int. Received: {value!r}")


_STACK_KEYS = ("name", "layer_regex", "num_layers", "embedding_patterns")


def _check_stack(stack: Any, where: str, names: set) -> tuple[str, int, str, list]:
    if not isinstance(stack, Mapping):
        raise TypeError(
            f"{where} must be a dict with keys {list(_STACK_KEYS)}. Received: {stack!r}"
        )
    unknown = sorted(set(stack) - set(_STACK_KEYS))
    missing = [k for k in _STACK_KEYS[:3] if k not in stack]
    if unknown or missing:
        raise ValueError(
            f"{where}: unknown keys {unknown}, missing keys {missing}; expected "
            f"{list(_STACK_KEYS)} (embedding_patterns optional). Received: {dict(stack)!r}"
        )
    name = stack["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[0-9A-Za-z_-]+", name) or name in names:
        raise ValueError(
            f"{where}['name'] must be a unique name of letters, digits, '_' or '-' (it prefixes "
            f"the group names). Received: {name!r}"
        )
    names.add(name)
    _check_num_layers(stack["num_layers"], f"{where}['num_layers']")
    regex = stack["layer_regex"]
    if not isinstance(regex, str):
        raise ValueError(f"{where}['layer_regex'] is not a valid regex. Received: {regex!r}")
    # Compiled with a time bound, as pattern_lrs are (it becomes part of the group patterns).
    compiled = compile_bounded(regex, f"{where}['layer_regex']")
    if compiled.groups != 1:
        raise ValueError(
            f"{where}['layer_regex'] must have exactly one capture group (the depth), e.g. "
            rf"r'^text/layer_(\d+)/'; it has {compiled.groups}. Received: {regex!r}"
        )
    embeddings = stack.get("embedding_patterns") or []
    if isinstance(embeddings, str):
        raise TypeError(f"{where}['embedding_patterns'] must be a list of regexes")
    return name, stack["num_layers"], regex, list(embeddings)


def _at_depth(regex: str, depth: int) -> str:
    """`regex` with its one capture group replaced by the literal `depth` (not a longer number)."""
    start = _group_start(regex)
    end = _group_end(regex, start)
    return f"{regex[:start]}(?:{depth})(?!\\d){regex[end:]}"


def _group_start(regex: str) -> int:
    """Index of the '(' that opens the first capturing group (plain or named)."""
    i, in_class = 0, False
    while i < len(regex):
        c = regex[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(" and (not regex.startswith("(?", i) or regex.startswith("(?P<", i)):
            return i
        i += 1
    raise ValueError(f"no capture group in {regex!r}")


def _group_end(regex: str, start: int) -> int:
    """Index just past the ')' closing the group opened at `start`."""
    depth, i, in_class = 0, start, False
    while i < len(regex):
        c = regex[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced parentheses in {regex!r}")
