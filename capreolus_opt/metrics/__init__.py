"""The one home of ranking metrics.

- :mod:`.candidates`: MRR@k and nDCG@k over labelled candidate sets in NumPy, judged only
  within each query's candidates (training-time evaluation of data without a qrels file).
- :mod:`.trec`: trec_eval semantics through ``ir_measures`` over qrels and run files (every
  judged document counts), the numbers recorded for real collections.

Paired significance tests of per-query values live in :mod:`capreolus_opt.stats`.
"""
