"""Deterministic synthetic ranking data with planted topical relevance (no download needed).

Token ids: 0 = PAD, 1 = UNK (never generated), then ``num_topics`` disjoint blocks of
``words_per_topic`` topic words, then background words up to ``vocab_size``.

- A query has a topic ``t`` and 2..``max_query_length`` words drawn from topic ``t``'s words.
- A document of topic ``u`` with topic density ``f`` has ``max_doc_length // 2..max_doc_length``
  words; each is drawn from topic ``u``'s words with probability ``f``, else from the background.
- Relevance: label 2 = a document of the query's topic at density ``topic_fraction``; label 1 =
  the query's topic at half that density; label 0 = another topic at density ``topic_fraction``
  (as topical as a relevant one, so only matching the query's topic separates them: a model has
  to look at query and document together).
- Training triples: (query, label-2 or label-1 document, label-0 document), fresh documents
  per triple. Evaluation: per query, one label-2, one label-1 and ``eval_candidates - 2``
  label-0 documents in a random order.

Everything is drawn with ``numpy.random.default_rng`` from ``SeedSequence([seed, stream])``
with separate streams for training and evaluation, so the same seed gives identical arrays and
changing ``num_train_triples`` leaves the evaluation set unchanged.
"""

from __future__ import annotations

import numpy as np

from capreolus_opt.data.ranking_data import EvalPairs, TrainTriples

_PAD, _FIRST_WORD = 0, 2
_TRAIN_STREAM, _EVAL_STREAM = 0, 1


class SyntheticRankingData:
    """Seeded synthetic queries and documents; see the module docstring for the generative story."""

    def __init__(
        self,
        *,
        seed: int = 0,
        vocab_size: int = 1000,
        num_topics: int = 16,
        words_per_topic: int = 12,
        max_query_length: int = 6,
        max_doc_length: int = 24,
        topic_fraction: float = 0.4,
        num_train_triples: int = 4096,
        num_eval_queries: int = 100,
        eval_candidates: int = 10,
    ) -> None:
        for name, value, low in (
            ("num_topics", num_topics, 2),
            ("words_per_topic", words_per_topic, 1),
            ("max_query_length", max_query_length, 2),
            ("max_doc_length", max_doc_length, 2),
            ("num_train_triples", num_train_triples, 1),
            ("num_eval_queries", num_eval_queries, 1),
            ("eval_candidates", eval_candidates, 3),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}. Received: {value!r}")
        background = vocab_size - _FIRST_WORD - num_topics * words_per_topic
        if background < 1:
            raise ValueError(
                f"vocab_size={vocab_size} leaves no background words: it must exceed "
                f"2 + num_topics * words_per_topic = {2 + num_topics * words_per_topic}."
            )
        if not 0.0 < topic_fraction <= 1.0:
            raise ValueError(f"topic_fraction must be in (0, 1]. Received: {topic_fraction!r}")
        self.seed = seed
        self._vocab_size = vocab_size
        self.num_topics = num_topics
        self.words_per_topic = words_per_topic
        self.max_query_length = max_query_length
        self.max_doc_length = max_doc_length
        self.topic_fraction = topic_fraction
        self.num_train_triples = num_train_triples
        self.num_eval_queries = num_eval_queries
        self.eval_candidates = eval_candidates
        self._background_start = _FIRST_WORD + num_topics * words_per_topic

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def pad_id(self) -> int:
        return _PAD

    def topic_words(self, topic: int) -> np.ndarray:
        """The token ids owned by ``topic``."""
        start = _FIRST_WORD + topic * self.words_per_topic
        return np.arange(start, start + self.words_per_topic, dtype=np.int32)

    def _rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, stream]))

    def _query(self, rng: np.random.Generator, topic: int) -> np.ndarray:
        length = rng.integers(2, self.max_query_length + 1)
        out = np.full((self.max_query_length,), _PAD, dtype=np.int32)
        out[:length] = rng.choice(self.topic_words(topic), size=length)
        return out

    def _document(self, rng: np.random.Generator, topic: int, density: float) -> np.ndarray:
        length = rng.integers(self.max_doc_length // 2, self.max_doc_length + 1)
        from_topic = rng.random(length) < density
        words = np.where(
            from_topic,
            rng.choice(self.topic_words(topic), size=length),
            rng.integers(self._background_start, self._vocab_size, size=length),
        )
        out = np.full((self.max_doc_length,), _PAD, dtype=np.int32)
        out[:length] = words
        return out

    def _other_topic(self, rng: np.random.Generator, topic: int) -> int:
        # Uniform over the other topics.
        return int((topic + rng.integers(1, self.num_topics)) % self.num_topics)

    def train_triples(self) -> TrainTriples:
        """``num_train_triples`` (query, relevant document, non-relevant document) triples."""
        rng = self._rng(_TRAIN_STREAM)
        n = self.num_train_triples
        q = np.empty((n, self.max_query_length), np.int32)
        pos = np.empty((n, self.max_doc_length), np.int32)
        neg = np.empty((n, self.max_doc_length), np.int32)
        for i in range(n):
            topic = int(rng.integers(self.num_topics))
            q[i] = self._query(rng, topic)
            density = self.topic_fraction if rng.random() < 0.5 else self.topic_fraction / 2
            pos[i] = self._document(rng, topic, density)
            neg[i] = self._document(rng, self._other_topic(rng, topic), self.topic_fraction)
        return TrainTriples(query=q, positive=pos, negative=neg)

    def eval_pairs(self) -> EvalPairs:
        """``num_eval_queries * eval_candidates`` labelled (qid, query, document) pairs."""
        rng = self._rng(_EVAL_STREAM)
        k = self.eval_candidates
        n = self.num_eval_queries * k
        qid = np.repeat(np.arange(self.num_eval_queries, dtype=np.int32), k)
        q = np.empty((n, self.max_query_length), np.int32)
        d = np.empty((n, self.max_doc_length), np.int32)
        label = np.zeros((n,), np.int32)
        for j in range(self.num_eval_queries):
            topic = int(rng.integers(self.num_topics))
            query = self._query(rng, topic)
            labels = np.array([2, 1] + [0] * (k - 2), np.int32)[rng.permutation(k)]
            for c, lab in enumerate(labels):
                row = j * k + c
                q[row] = query
                label[row] = lab
                if lab == 2:
                    d[row] = self._document(rng, topic, self.topic_fraction)
                elif lab == 1:
                    d[row] = self._document(rng, topic, self.topic_fraction / 2)
                else:
                    d[row] = self._document(rng, self._other_topic(rng, topic), self.topic_fraction)
        return EvalPairs(qid=qid, query=q, document=d, label=label)
