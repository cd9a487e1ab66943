"""Read tracked runs from any observer and compare them (``compare``/``diff``/``plot``/``sweep``).

``load_runs(*sources)`` returns a :class:`RunList` of normalized :class:`Run` records merged by run
UUID across FileStorage folders, SQL databases and MongoDB (see ``load.py``).
"""

from __future__ import annotations

from capreolus_opt.runs.load import RunList, find_recorded_run, load_runs
from capreolus_opt.runs.records import LoadProblem, MetricSeries, Run, best_direction

__all__ = [
    "LoadProblem",
    "MetricSeries",
    "Run",
    "RunList",
    "best_direction",
    "load_runs",
    "find_recorded_run",
]
