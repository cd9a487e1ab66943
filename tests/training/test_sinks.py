"""Metric sinks and the console progress reporter."""

from __future__ import annotations

import io

import pytest

from capreolus_opt.training import (
    ConsoleSink,
    ListSink,
    MetricsSink,
    MultiSink,
    ProgressReporter,
)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_list_console_and_multi_sinks_follow_the_protocol() -> None:
    memory, stream = ListSink(), io.StringIO()
    console = ConsoleSink(stream)
    both = MultiSink([memory, console])
    for sink in (memory, console, both):
        assert isinstance(sink, MetricsSink)
    both.log_metrics(10, {"train/loss": 0.5, "group/head/lr": 1e-3})
    both.log_metrics(20, {"train/loss": 0.25})
    both.flush()
    assert memory.series("train/loss") == [(10, 0.5), (20, 0.25)]
    assert memory.names() == {"train/loss", "group/head/lr"}
    assert memory.flush_count == 1
    assert stream.getvalue().splitlines() == [
        "step 10  group/head/lr=0.001  train/loss=0.5",
        "step 20  train/loss=0.25",
    ]


def test_progress_is_plain_lines_off_a_terminal() -> None:
    stream = io.StringIO()
    reporter = ProgressReporter(200, 32, every=100, stream=stream)
    assert reporter.mode == "lines"
    for step in range(1, 201):
        reporter.update(step, 1.0 / step)
    reporter.close()
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["100/200", "200/200"]
    assert lines[-1].startswith("step 200/200  loss 0.0050  ")
    assert lines[-1].endswith(" examples/s  ETA 0:00:00")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_has_decimals_eta_leaves_out_evaluation_and_a_long_run_is_warned_once() -> None:
    stream, clock = io.StringIO(), FakeClock()
    reporter = ProgressReporter(10_000, 3, every=1, stream=stream, clock=clock)
    for step in range(1, 7):
        clock.now += 30.0 if step == 1 else 0.75  # the first call traces: not timed
        if step == 4:  # an evaluation of 3 batches takes 50 s between steps 3 and 4
            on_batch = reporter.eval_started("eval at step 3", 3)
            for _ in range(3):
                clock.now += 50.0 / 3
                on_batch()
            reporter.eval_done()
        reporter.update(step, 0.5)
    lines = stream.getvalue().splitlines()
    # 3 examples per 0.75 s = 4 examples/s; 9,996 steps left at 0.75 s each = 7497 s.
    assert lines[3] == "step 4/10000  loss 0.5000  4.0 examples/s  ETA 2:04:57"
    warnings = [ln for ln in lines if ln.startswith("warning:")]
    assert warnings == [
        "warning: at 4.0 examples/s the remaining 9,996 steps take about 2:04:57 (more than "
        "2:00:00): fewer steps, shorter sequences, a smaller model or an accelerator would help"
    ]
    assert lines[0] == "step 1/10000  loss 0.5000  0.1 examples/s"  # no ETA before two calls


def test_evaluation_progress_redraws_with_an_eta_on_a_terminal_only() -> None:
    stream, clock = FakeTerminal(), FakeClock()
    reporter = ProgressReporter(10, 4, stream=stream, clock=clock)
    on_batch = reporter.eval_started("test, best model", 4)
    clock.now += 2.0
    on_batch()
    reporter.eval_done()
    reporter.evaluated(10, {"ndcg@10": 0.5})
    text = stream.getvalue()
    assert "\rtest, best model: batch 1/4  ETA 0:00:06" in text
    assert text.endswith("\neval at step 10/10  ndcg@10 0.5000\n")
    plain = io.StringIO()
    quiet = ProgressReporter(10, 4, stream=plain, clock=clock)
    quiet.eval_started("eval at step 5", 4)()
    assert plain.getvalue() == ""


def test_progress_bar_on_a_terminal_redraws_one_line() -> None:
    stream = FakeTerminal()
    reporter = ProgressReporter(10, 4, stream=stream)
    assert reporter.mode == "bar"
    for step in (5, 10):
        reporter.update(step, 0.125)
    reporter.close()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[###############...............] 5/10  loss 0.1250" in text
    assert "[##############################] 10/10" in text


def test_eval_lines_break_the_bar_once_and_follow_plain_lines() -> None:
    stream = FakeTerminal()
    reporter = ProgressReporter(10, 4, stream=stream)
    reporter.update(5, 0.5)
    reporter.evaluated(5, {"ndcg@10": 0.5, "mrr@10": 0.25})
    reporter.update(10, 0.25)
    reporter.close()
    reporter.evaluated(10, {"mrr@10": 0.75})
    lines = stream.getvalue().split("\n")
    assert lines[1] == "eval at step 5/10  mrr@10 0.2500  ndcg@10 0.5000"
    assert lines[3] == "eval at step 10/10  mrr@10 0.7500"  # no blank line after close()
    plain = io.StringIO()
    lines_reporter = ProgressReporter(10, 4, every=5, stream=plain)
    lines_reporter.update(5, 0.5)
    lines_reporter.evaluated(5, {"mrr@10": 0.25})
    assert plain.getvalue().splitlines()[1] == "eval at step 5/10  mrr@10 0.2500"


def test_progress_off_and_bad_mode() -> None:
    stream = FakeTerminal()
    reporter = ProgressReporter(10, 4, mode=False, stream=stream)
    reporter.update(10, 1.0)
    reporter.close()
    assert stream.getvalue() == ""
    with pytest.raises(ValueError, match="Received: 'fancy'"):
        ProgressReporter(10, 4, mode="fancy")


def test_count_progress_draws_rate_and_eta_on_a_terminal_only() -> None:
    from capreolus_opt.training.sinks import CountProgress

    stream, clock = FakeTerminal(), FakeClock()
    bar = CountProgress(1000, what="reranked", stream=stream, clock=clock)
    clock.now += 4.0
    bar(256)
    bar.close()
    assert stream.getvalue() == "\rreranked 256/1,000 pairs  64.0 pairs/s  ETA 0:00:12\x1b[K\n"
    plain = io.StringIO()
    CountProgress(10, stream=plain)(5)
    assert plain.getvalue() == ""
    forced = io.StringIO()
    CountProgress(10, stream=forced, mode="bar", clock=clock)(0)
    assert "ETA ?" in forced.getvalue()
