"""The statistics of ``capreolus_opt.stats``, where the read side has always found them.

One implementation serves both sides: training's evaluation (``models/trec_evaluation.py``)
tests each run against its first stage with the same paired tests that ``compare`` uses.
"""

from capreolus_opt.stats import (  # noqa: F401
    Summary,
    TestResult,
    holm,
    paired_comparison,
    paired_t_test,
    permutation_test,
    summarize,
    welch_test,
    win_tie_loss,
)
