"""Example models for the Task protocol (docs/ARCHITECTURE.md).

- ``reranker.RerankingTask``: pairwise/softmax-trained text-pair reranker, MRR@10 / nDCG@10.
- ``encoder.build_reranker``: the small cross-encoder (``embedding/``, ``encoder/``, ``head/``).
- ``bert.build_bert_reranker`` / ``bert_reranker_builder``: keras_hub BERT (extra ``hub``).
- ``layerwise.layerwise_decay_pattern_lrs``: layer-wise lr decay as ``pattern_lrs``.
- ``losses``: ranking losses (Keras ops); metrics live in :mod:`capreolus_opt.metrics`.

Submodules are imported explicitly (no re-exports) so importing this package stays cheap.
"""
