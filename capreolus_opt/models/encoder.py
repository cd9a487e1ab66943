"""A small cross-encoder reranker: embeddings, a pre-LayerNorm transformer encoder, a scoring head.

The model reads the query and the document together, as one sequence ``[query; document]``
(each padded to its own fixed length, PAD tokens in between are masked, not removed), so
attention can compare query and document tokens in every layer (a cross-encoder, like monoBERT).
A segment embedding tells the two parts apart and a learned position embedding covers
``query_length + document_length`` positions. Padding (``pad_id``) is masked as attention keys
and left out of the mean pooling that feeds the head.

Variable paths (what ``AdamMultilr`` patterns match; a functional model adds no prefix):
``embedding/{token,segment,position}/embeddings``, ``embedding/norm/{gamma,beta}``,
``encoder/layer_<i>/{attention,attention_norm,ffn_in,ffn_out,ffn_norm}/...``,
``encoder/final_norm/...``, ``head/hidden/{kernel,bias}``, ``head/score/kernel``. So
``^embedding/``, ``^encoder/``, ``^encoder/layer_0/`` and ``^head/`` select the natural groups.
"""

from __future__ import annotations

import keras
from keras import layers, ops


class RerankerEmbedding(layers.Layer):
    """Sum of token, segment and position embeddings, then LayerNorm and dropout."""

    def __init__(
        self,
        *,
        vocab_size: int,
        sequence_length: int,
        hidden_dim: int,
        dropout: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.token = layers.Embedding(vocab_size, hidden_dim, name="token")
        self.segment = layers.Embedding(2, hidden_dim, name="segment")
        self.position = layers.Embedding(sequence_length, hidden_dim, name="position")
        self.norm = layers.LayerNormalization(epsilon=1e-6, name="norm")
        self.dropout = layers.Dropout(dropout)
        self.sequence_length = sequence_length
        self.hidden_dim = hidden_dim

    def build(self, input_shape) -> None:
        ids_shape = input_shape[0]
        self.token.build(ids_shape)
        self.segment.build(ids_shape)
        self.position.build(ids_shape)
        self.norm.build((*ids_shape, self.hidden_dim))

    def call(self, inputs, training=None):
        token_ids, segment_ids = inputs
        positions = ops.arange(self.sequence_length)[None, :]
        x = self.token(token_ids) + self.segment(segment_ids) + self.position(positions)
        return self.dropout(self.norm(x), training=training)


class TransformerLayer(layers.Layer):
    """Pre-LN block: ``x + MHA(LN(x))`` then ``x + FFN(LN(x))`` with a GELU FFN."""

    def __init__(
        self,
        *,
        hidden_dim: int,
        num_heads: int,
        intermediate_dim: int,
        dropout: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim={hidden_dim} must be divisible by num_heads={num_heads}.")
        self.attention_norm = layers.LayerNormalization(epsilon=1e-6, name="attention_norm")
        self.attention = layers.MultiHeadAttention(
            num_heads, hidden_dim // num_heads, dropout=dropout, name="attention"
        )
        self.ffn_norm = layers.LayerNormalization(epsilon=1e-6, name="ffn_norm")
        self.ffn_in = layers.Dense(intermediate_dim, activation="gelu", name="ffn_in")
        self.ffn_out = layers.Dense(hidden_dim, name="ffn_out")
        self.dropout = layers.Dropout(dropout)
        self.intermediate_dim = intermediate_dim

    def build(self, input_shape) -> None:
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.ffn_norm.build(input_shape)
        self.ffn_in.build(input_shape)
        self.ffn_out.build((*input_shape[:-1], self.intermediate_dim))

    def call(self, x, attention_mask, training=None):
        h = self.attention_norm(x)
        h = self.attention(h, h, attention_mask=attention_mask, training=training)
        x = x + self.dropout(h, training=training)
        h = self.ffn_out(self.ffn_in(self.ffn_norm(x)))
        return x + self.dropout(h, training=training)


class TransformerEncoder(layers.Layer):
    """``num_layers`` ``TransformerLayer``s named ``layer_0..`` and a final LayerNorm."""

    def __init__(
        self,
        *,
        num_layers: int,
        hidden_dim: int,
        num_heads: int,
        intermediate_dim: int,
        dropout: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.blocks = [
            TransformerLayer(
                hidden_dim=hidden_dim,
                num_heads=num_heads,
                intermediate_dim=intermediate_dim,
                dropout=dropout,
                name=f"layer_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = layers.LayerNormalization(epsilon=1e-6, name="final_norm")

    def build(self, input_shape) -> None:
        for block in self.blocks:
            block.build(input_shape[0])
        self.final_norm.build(input_shape[0])

    def call(self, inputs, training=None):
        x, padding_mask = inputs
        # [B, 1, L]: every position attends to the non-PAD keys.
        attention_mask = padding_mask[:, None, :]
        for block in self.blocks:
            x = block(x, attention_mask=attention_mask, training=training)
        return self.final_norm(x)


class ScoringHead(layers.Layer):
    """Masked mean pooling over the sequence, a GELU layer, then one linear score."""

    def __init__(self, *, hidden_dim: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hidden = layers.Dense(hidden_dim, activation="gelu", name="hidden")
        # No bias: both ranking losses compare scores of the same query, so a shared offset gets
        # zero gradient, and Adam turns that float noise into full-size random steps.
        self.score = layers.Dense(1, use_bias=False, name="score")
        self.hidden_dim = hidden_dim

    def build(self, input_shape) -> None:
        x_shape = input_shape[0]
        self.hidden.build((x_shape[0], x_shape[-1]))
        self.score.build((x_shape[0], self.hidden_dim))

    def call(self, inputs):
        x, padding_mask = inputs
        weights = ops.cast(padding_mask, x.dtype)[..., None]
        pooled = ops.sum(x * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
        return ops.squeeze(self.score(self.hidden(pooled)), axis=-1)


def build_reranker(
    *,
    vocab_size: int,
    query_length: int,
    document_length: int,
    pad_id: int = 0,
    hidden_dim: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_dim: int = 128,
    dropout: float = 0.0,
) -> keras.Model:
    """A functional cross-encoder: ``{"query": int [B, Lq], "document": int [B, Ld]} -> [B]``
    scores (higher = more relevant). See the module docstring for the architecture and paths."""
    query = keras.Input((query_length,), dtype="int32", name="query")
    document = keras.Input((document_length,), dtype="int32", name="document")
    token_ids = ops.concatenate([query, document], axis=1)
    segment_ids = ops.concatenate([ops.zeros_like(query), ops.ones_like(document)], axis=1)
    padding_mask = ops.not_equal(token_ids, pad_id)
    x = RerankerEmbedding(
        vocab_size=vocab_size,
        sequence_length=query_length + document_length,
        hidden_dim=hidden_dim,
        dropout=dropout,
        name="embedding",
    )([token_ids, segment_ids])
    x = TransformerEncoder(
        num_layers=num_layers,
        hidden_dim=hidden_dim,
        num_heads=num_heads,
        intermediate_dim=intermediate_dim,
        dropout=dropout,
        name="encoder",
    )([x, padding_mask])
    score = ScoringHead(hidden_dim=hidden_dim, name="head")([x, padding_mask])
    return keras.Model({"query": query, "document": document}, score, name="reranker")
