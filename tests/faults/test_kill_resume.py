"""SIGKILL a real ``capreolus-opt train`` mid-run, then ``--resume`` it.

Wanted: the killed record keeps every point delivered before the kill (deliveries go on while
training, one per beat, ``--beat_every``) as a gapless prefix of the steps, ``compare`` shows it
as DIED once its heartbeat is ``STALE_BEATS`` beats old, ``--resume`` takes the dead run's
workdir over, and the killed run's points up to the resumed run's start step plus the resumed
run's points are one point per logged step, with no gap and no repeat.

And a kill (SIGKILL, or SIGTERM: INTERRUPTED) while the dev-selected model scores the test
split at the end of training: ``--resume`` scores it with the same weights and ends COMPLETED
with the test metrics in its result.
"""

from __future__ import annotations

import json
import time

import pytest

from capreolus_opt.records.load import load_runs
from capreolus_opt.records.record import continued_metrics
from capreolus_opt.records.status import STALE_BEATS
from tests.cli_helpers import run_cli
from tests.faults.fault_tools import TrainProcess, file_steps, smoke_args, wait_until

BEAT_S = 0.5  # smoke_args' --beat_every
NUM_STEPS = 240


@pytest.mark.slow
def test_sigkill_then_resume_has_no_gap(tmp_path):
    runs = tmp_path / "runs"
    args = smoke_args(NUM_STEPS, "--observer", f"file://{runs}", "--workdir", str(tmp_path / "w"))
    proc = TrainProcess(args, tmp_path)
    try:
        # Past the first checkpoint (step 50), so that the resumed run starts there.
        wait_until(lambda: len(file_steps(runs)) >= 40, "points past the first checkpoint")
        seen = len(file_steps(runs))
        wait_until(lambda: len(file_steps(runs)) > seen, "a further delivery while training")
        delivered = file_steps(runs)
        proc.kill()
    finally:
        proc.close()
    (folder,) = [p for p in runs.iterdir() if p.name.isdigit()]
    assert json.loads((folder / "run.json").read_text())["status"] == "RUNNING"
    kept = json.loads((folder / "metrics.json").read_text())["train/loss"]["steps"]
    # Every delivered point survives the kill, and what is on disk is a prefix without gaps.
    assert kept[: len(delivered)] == delivered
    assert kept == list(range(2, 2 * len(kept) + 1, 2)) and kept[-1] < NUM_STEPS

    time.sleep(STALE_BEATS * BEAT_S + 1)
    shown = run_cli("compare", f"file://{runs}")
    assert shown.returncode == 0, shown.stderr
    assert "DIED" in shown.stdout and "RUNNING" not in shown.stdout
    killed_uuid = json.loads((folder / "info.json").read_text())["run_uuid"]

    resumed = run_cli(
        "train", "--resume", killed_uuid, "--observer", f"file://{runs}", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"run {killed_uuid}" in resumed.stdout and "did not finish" in resumed.stdout

    loaded = {run.run_uuid: run for run in load_runs(f"file://{runs}")}
    killed = loaded.pop(killed_uuid)
    (after,) = loaded.values()
    assert killed.status == "DIED" and killed.stored_status == "RUNNING"
    assert after.status == "COMPLETED" and after.resumed_from == killed_uuid
    assert after.start_step >= 50 and after.start_step % 50 == 0
    combined = continued_metrics(killed, after)
    assert combined["train/loss"].steps == list(range(2, NUM_STEPS + 1, 2))
    for name, series in combined.items():
        assert len(set(series.steps)) == len(series.steps), f"{name} repeats a step"


# Kills the process the moment the dev-selected model has scored the test candidates, before
# they are recorded (the end-of-run test scoring), after saving the scores it computed.
_KILLED_WHILE_SCORING_TEST = """
import json, os, signal, sys
sys.path.insert(0, {root!r})
from capreolus_opt.training import selection

scored = selection.EvaluationRecorder.score_test

def score_test_then_die(self, evaluate, global_batch_size):
    def evaluate_then_die(dataset):
        outputs = evaluate(dataset)
        with open("scored_before_the_kill.json", "w") as f:
            json.dump({{k: v.reshape(-1).tolist() for k, v in outputs.items()}}, f)
        os.kill(os.getpid(), signal.{signal})
        signal.pause()  # SIGTERM: the handler's KeyboardInterrupt leaves from here
    return scored(self, evaluate_then_die, global_batch_size)

selection.EvaluationRecorder.score_test = score_test_then_die
from capreolus_opt.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _bert_bindings(tmp_path) -> list[str]:
    """A tiny preset over the smoke collection's words (its best model is saved whole)."""
    pytest.importorskip("keras_hub")
    pytest.importorskip("tokenizers")
    from capreolus_opt.data.trec.formats import iter_collection
    from tests.bert_presets import make_tiny_preset

    collection = tmp_path / "gin_configs" / "data" / "trec_smoke" / "collection.tsv"
    words = sorted({w for _, _, text in iter_collection(str(collection)) for w in text.split()})
    preset = make_tiny_preset(tmp_path / "preset", max_sequence_length=32, words=words[:300])
    return ["--gin_param", f'BERT_PRESET = "{preset}"']


@pytest.mark.slow
@pytest.mark.parametrize(("config", "signal_name", "code", "status"), [
    ("trec_reranker_smoke.gin", "SIGKILL", -9, "RUNNING"),
    ("trec_reranker_smoke.gin", "SIGTERM", 130, "INTERRUPTED"),
    ("trec_bert_reranker_smoke.gin", "SIGKILL", -9, "RUNNING"),
])  # fmt: skip
def test_a_kill_while_the_test_split_is_scored_then_resume_scores_it(
    tmp_path, monkeypatch, config, signal_name, code, status
):
    import os
    import shutil
    import subprocess
    import sys

    import ir_measures

    from capreolus_opt.data.trec.formats import read_run
    from capreolus_opt.metrics.trec import MEASURES
    from tests.cli_helpers import ROOT

    shutil.copytree(ROOT / "gin_configs", tmp_path / "gin_configs")
    monkeypatch.setenv("CAPREOLUS_CACHE", str(tmp_path / "cache"))
    driver = tmp_path / "killed_while_scoring_test.py"
    driver.write_text(_KILLED_WHILE_SCORING_TEST.format(root=str(ROOT), signal=signal_name))
    runs = tmp_path / "runs"
    bindings = _bert_bindings(tmp_path) if "bert" in config else []
    first = subprocess.run(
        [sys.executable, str(driver), "train", f"gin_configs/{config}", *bindings,
         "--observer", f"file://{runs}", "--workdir", "w"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert first.returncode == code, first.stderr[-3000:]
    (folder,) = [p for p in runs.iterdir() if p.name.isdigit()]
    killed = json.loads((folder / "run.json").read_text())
    assert killed["status"] == status and not killed.get("result")
    scored = json.loads((tmp_path / "scored_before_the_kill.json").read_text())
    killed_uuid = json.loads((folder / "info.json").read_text())["run_uuid"]

    resumed = run_cli(
        "train", "--resume", killed_uuid, "--observer", f"file://{runs}", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr[-3000:]
    loaded = {run.run_uuid: run for run in load_runs(f"file://{runs}")}
    loaded.pop(killed_uuid)
    (after,) = loaded.values()
    assert after.status == "COMPLETED" and after.resumed_from == killed_uuid
    result = after.result
    assert {f"test/{name}" for name in MEASURES} <= set(result), sorted(result)
    best = json.loads((tmp_path / "w" / "best" / "best.json").read_text())["step"]
    assert result["best_step"] == best
    # One copy of the weights: a model saved whole (BERT), else the rebuildable one's .npz.
    kept = sorted(p.name for p in (tmp_path / "w" / "best").glob("model.*"))
    assert kept == (["model.keras"] if "bert" in config else ["model.weights.npz"])
    # The resumed run scored test with the same dev-selected weights as the killed one did...
    test_run = tmp_path / "w" / "evaluations" / f"step_{best:08d}.test.run"
    written = read_run(str(test_run))
    assert sum(len(docs) for docs in written.values()) == len(scored["score"])
    assert sorted(s for docs in written.values() for s in docs.values()) == pytest.approx(
        sorted(scored["score"]), rel=1e-6, abs=1e-6
    )
    # ...and its result is what ir_measures gives for that run.
    measures = [ir_measures.parse_measure(m) for m in MEASURES.values()]
    on_files = ir_measures.calc_aggregate(
        measures,
        ir_measures.read_trec_qrels(str(tmp_path / "w" / "evaluations" / "test.qrels")),
        ir_measures.read_trec_run(str(test_run)),
    )
    for name, text in MEASURES.items():
        assert result[f"test/{name}"] == pytest.approx(on_files[ir_measures.parse_measure(text)])
