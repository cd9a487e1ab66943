"""Ranking data sources and their tf.data pipelines.

- ``synthetic.SyntheticRankingData``: seeded queries/documents with planted topical relevance.
- ``tsv.TsvRankingData``: (query, document, label) or (query, positive, negative) TSV files.
- ``tokenizer``: lowercase alphanumeric tokenizer and ``Vocabulary`` (PAD, UNK).
- ``ranking_data``: ``TrainTriples`` / ``EvalPairs`` and the train/eval datasets.

Submodules are imported explicitly (no re-exports) so importing this package stays cheap.
"""
