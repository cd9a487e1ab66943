"""Training under tf.distribute: strategy factory, traced steps, diagnostics, checkpoints, loop.

See docs/ARCHITECTURE.md (training/) for the contract with the gin/CLI and tracking layers.
"""

from capreolus_opt.training.loop import (
    DEFAULT_METRICS_EVERY,
    NonFiniteLossError,
    TrainResult,
    train,
)
from capreolus_opt.training.sinks import (
    ConsoleSink,
    ListSink,
    MetricsSink,
    MultiSink,
    ProgressReporter,
)
from capreolus_opt.training.strategy import (
    configure_cpu_devices,
    is_chief,
    make_strategy,
    strategy_summary,
)

__all__ = [
    "DEFAULT_METRICS_EVERY",
    "ConsoleSink",
    "ListSink",
    "MetricsSink",
    "MultiSink",
    "NonFiniteLossError",
    "ProgressReporter",
    "TrainResult",
    "configure_cpu_devices",
    "is_chief",
    "make_strategy",
    "strategy_summary",
    "train",
]
