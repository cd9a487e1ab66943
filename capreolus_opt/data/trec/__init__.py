"""TREC-standard reranking data: collection, topics, qrels, first-stage run, folds, run files.

- ``formats``: readers of the file formats (every malformed line is ``DataError(FILE:LINE)``);
- ``inputs``: reading and checking them together (folds, seeded splits, a BM25 run if needed);
- ``store``: the tokenised collection cache (memory-mapped, documents looked up by id);
- ``data.TrecRerankingData``: all of it as the ``RankingData`` of ``RerankingTask``;
- ``runfile``: ranking order, run files and qrels files, interpolation (metrics live in
  :mod:`capreolus_opt.metrics`).
"""
