"""End to end through the real CLI: train on TREC files, check the recorded numbers against
ir_measures on the written files, rerank with the saved model, and bad data exits 2 unrecorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ir_measures
import numpy as np
import pytest

from capreolus_opt.data.trec.formats import read_run
from capreolus_opt.metrics.trec import MEASURES
from tests.cli_helpers import ROOT, run_cli

SMOKE = "gin_configs/trec_reranker_smoke.gin"
DATA = "gin_configs/data/trec_smoke"


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "gin_configs", tmp_path / "gin_configs")
    monkeypatch.setenv("CAPREOLUS_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _run_folders(runs: Path) -> list[Path]:
    return [p for p in runs.iterdir() if p.name.isdigit()] if runs.exists() else []


@pytest.mark.slow
def test_train_records_trec_metrics_that_ir_measures_reproduces_and_rerank_reloads(scratch):
    proc = run_cli("train", SMOKE, "--observer", "file://runs", "--workdir", "w", cwd=scratch)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = _run_folders(scratch / "runs")
    record = json.loads((folder / "run.json").read_text())
    info = json.loads((folder / "info.json").read_text())
    assert record["status"] == "COMPLETED"
    result = record["result"]
    for split in ("dev", "test"):
        assert {f"{split}/{name}" for name in MEASURES} <= set(result)
    # The reported step is the best on dev among the evaluations (steps 8 and 16).
    dev = {
        step: json.loads((folder / f"step_{step:08d}.metrics.json").read_text())["dev/ndcg@10"]
        for step in (8, 16)
    }
    best = int(result["best_step"])
    assert best == max(dev, key=lambda s: (dev[s], -s))
    # Evaluations score dev only; the test candidates once, by the best model; a randomly
    # initialised model gets no step-0 evaluation by default.
    assert sorted(p.name for p in folder.glob("step_*.test.run")) == [f"step_{best:08d}.test.run"]
    assert not list(folder.glob("step_00000000.*"))
    assert not any(k.startswith("start/") for k in result)
    for split in ("dev", "test"):
        for name in ("model", "first_stage"):
            assert {f"{split}/{name}/{m}" for m in MEASURES} <= set(result)
        tests = [result[f"{split}/model/{k}"] for k in ("wins", "ties", "losses")]
        assert sum(tests) == 4 and 0 < result[f"{split}/model/p_randomisation"] <= 1
    worse = result["dev/model/ndcg@10"] <= result["dev/first_stage/ndcg@10"]
    assert ("model alone is not better than the first stage on dev" in proc.stderr) == worse
    assert json.loads((folder / "best.json").read_text())["step"] == best
    # ir_measures on the written (attached) test run and test qrels gives exactly the result.
    test_run = folder / f"step_{best:08d}.test.run"
    measures = [ir_measures.parse_measure(m) for m in MEASURES.values()]
    on_files = ir_measures.calc_aggregate(
        measures,
        ir_measures.read_trec_qrels(str(folder / "test.qrels")),
        ir_measures.read_trec_run(str(test_run)),
    )
    for name, text in MEASURES.items():
        assert result[f"test/{name}"] == on_files[ir_measures.parse_measure(text)], name
    header = (folder / f"step_{best:08d}.per_query.tsv").read_text().splitlines()[0]
    assert header.split("\t") == ["split", "qid", *MEASURES]
    truncation = info["task"]["truncation"]
    assert truncation["documents"] > 0 and 0 <= truncation["documents_truncated"] <= 1
    assert info["task"]["queries"] == {"train": 16, "dev": 4, "test": 4}

    # Rerank with the saved model, found by run UUID: the test queries' scores are those the
    # best model gave during training (every weight reloaded).
    out = scratch / "reranked.run"
    proc = run_cli(
        "rerank", info["run_uuid"], "--source", "file://runs", "--run-file", f"{DATA}/run.txt",
        "--topics", f"{DATA}/topics.tsv", "--collection", f"{DATA}/collection.tsv",
        "--top-k", "20", "-o", str(out), "--qrels", f"{DATA}/qrels.txt", "--progress", "bar",
        cwd=scratch,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    # (\r reads as \n here: the helper decodes with universal newlines)
    assert "\nreranked 468/468 pairs  " in proc.stderr and "ETA 0:00:00" in proc.stderr
    assert f"step-{best} model" in proc.stdout
    assert set(json.loads(proc.stdout.strip().splitlines()[-1])) == set(MEASURES)
    reranked, trained = read_run(str(out)), read_run(str(test_run))
    assert len(reranked) == 24
    for qid, docs in trained.items():
        assert reranked[qid].keys() == docs.keys()
        np.testing.assert_allclose(
            [reranked[qid][d] for d in docs], list(docs.values()), rtol=1e-5, atol=1e-6
        )

    # A run file naming a document the collection lacks: exit 2, the file named, nothing written.
    bad = scratch / "bad.run"
    bad.write_text("q0 Q0 d1 1 2.0 x\nq0 Q0 nosuchdoc 2 1.0 x\n")
    proc = run_cli(
        "rerank", "w", "--run-file", str(bad), "--topics", f"{DATA}/topics.tsv",
        "--collection", f"{DATA}/collection.tsv", "-o", str(scratch / "never.run"), cwd=scratch,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "bad.run" in proc.stderr and "'nosuchdoc'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (scratch / "never.run").exists()


@pytest.mark.slow
def test_bad_data_exits_2_naming_file_and_line_before_anything_is_recorded(scratch):
    bad = scratch / "qrels.txt"
    lines = (scratch / DATA / "qrels.txt").read_text().splitlines()
    lines[2] = "q0 0 d2"
    bad.write_text("\n".join(lines) + "\n")
    proc = run_cli(
        "train", SMOKE, "--observer", "file://runs",
        "--gin_param", f'TrecRerankingData.qrels = "{bad}"', cwd=scratch,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    assert errors == [
        f"capreolus-opt train: error: {bad}:3: expected 4 fields 'qid 0 docid rel', got 3: "
        "'q0 0 d2'"
    ]
    assert "Traceback" not in proc.stderr and not _run_folders(scratch / "runs")

    # The TSV loader too: a train file that is only a header line.
    header = scratch / "train.tsv"
    header.write_text("query\tpositive\tnegative\n")
    proc = run_cli(
        "train", "gin_configs/smoke.gin", "--observer", "file://runs",
        "--gin_param", "RerankingTask.data = @TsvRankingData()",
        "--gin_param", f'TsvRankingData.train_path = "{header}"',
        "--gin_param", f'TsvRankingData.eval_path = "{header}"', cwd=scratch,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"{header}: no examples after the header line" in proc.stderr
    assert not _run_folders(scratch / "runs")
