"""Tiny randomly initialised keras_hub BERT presets, written the way keras_hub writes real ones."""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Enough sub-words that the synthetic TSV texts in the tests tokenise into more than [UNK].
WORDS = (
    "the a of deer park query document rank re ##rank ##ing ##er ##s tensor ##flow keras bert "
    "x y z ##x ##y ##z 0 1 2 3 4 5 6 7 8 9 ##0 ##1 ##2 ##3 ##4 ##5 ##6 ##7 ##8 ##9 , . ! ? - "
    "w ##w t ##t d ##d q ##q relevant irrelevant"
).split()
TINY_SIZES = dict(num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, dropout=0.0)


def make_tiny_preset(
    path: Path | str,
    *,
    max_sequence_length: int = 64,
    lowercase: bool = True,
    seed: int = 0,
    words: list[str] | None = None,
) -> Path:
    """Saves a 2-layer BertBackbone and its BertTokenizer (vocabulary + settings) to ``path``;
    ``words`` replace the built-in sub-words (e.g. the words of a generated collection)."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    vocab = SPECIALS + list(WORDS if words is None else words)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocab), max_sequence_length=max_sequence_length, **TINY_SIZES
    )
    backbone.save_to_preset(str(path))
    keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=lowercase).save_to_preset(str(path))
    return Path(path)
