"""``capreolus-opt export tensorboard|mlflow`` checked the way a user sees the result: the real
CLI writes, a real ``tensorboard --logdir`` / ``mlflow server`` serves it on 127.0.0.1, and
headless Chromium (Debian's package, installed by .ci/run) shows the runs and hyperparameters.
Screenshots are saved under each test's tmp folder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sacred.observers import FileStorageObserver

from capreolus_opt.records.load import load_runs
from tests.seeded_runs import record_seeded

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LIST_HPARAM = ("AdamMultilr.pattern_lrs[0].patterns", ["^encoder/", "^pooler/"])
SETTINGS = [(1e-3, 0, 0.81), (1e-3, 1, 0.83), (3e-3, 0, 0.71), (3e-3, 1, 0.74)]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "capreolus_opt.cli", *args], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export_runs")
    folder = tmp / "runs"
    for lr, seed, value in SETTINGS:
        record_seeded([FileStorageObserver(str(folder))], tmp, lr=lr, seed=seed, value=value,
                      extra=[LIST_HPARAM])  # fmt: skip
    return str(folder)


def _epoch_ms(naive_utc) -> float:
    return naive_utc.replace(tzinfo=dt.UTC).timestamp() * 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(argv: list[str], url: str, log: Path, timeout: float = 240) -> subprocess.Popen:
    with log.open("w") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{argv[0]} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return proc
        except OSError:
            time.sleep(1)
    proc.kill()
    raise AssertionError(f"{argv[0]} did not answer at {url}: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def test_mlflow_names_pass_mlflows_own_validation():
    validation = pytest.importorskip("mlflow.utils.validation")
    from capreolus_opt.export.mlflow import _unique_names, mlflow_name

    cases = {"eval/mrr@10": "eval/mrr_at_10", "AdamMultilr.pattern_lrs[0].lr":
             "AdamMultilr.pattern_lrs.0.lr", "group/head/lr": "group/head/lr",
             "a//b/../c": "a/b/__/c", "/lead": "lead", "x" * 300: "x" * 250,
             "q?%": "q__"}  # fmt: skip
    for name, expected in cases.items():
        assert mlflow_name(name) == expected
        validation._validate_metric_name(expected)
        validation._validate_param_name(expected)
    assert _unique_names(["a@b", "a_at_b"]) == {"a@b": "a_at_b", "a_at_b": "a_at_b_2"}


@pytest.mark.slow
def test_tensorboard_export_is_served_with_scalars_and_hparams(store, tmp_path):
    pytest.importorskip("tensorboard")
    from tests.browser import Browser, chromium_path

    logdir = tmp_path / "tb"
    first = _cli("export", "tensorboard", store, "--logdir", str(logdir))
    assert first.returncode == 0, first.stderr
    assert "wrote 4 runs" in first.stdout
    files = sorted(p.relative_to(logdir) for p in logdir.rglob("events.out.tfevents.*"))
    again = _cli("export", "tensorboard", store, "--logdir", str(logdir))
    assert again.returncode == 0, again.stderr
    # Exporting again replaces every file: as many as before, no leftovers of the first.
    assert len(list(logdir.rglob("events.out.tfevents.*"))) == len(files) == 5
    assert not list(logdir.glob(".*partial"))

    runs = load_runs(store)
    port = _free_port()
    server = _serve([str(BIN / "tensorboard"), "--logdir", str(logdir), "--host", "127.0.0.1",
                     "--port", str(port)], f"http://127.0.0.1:{port}/data/runs",
                    tmp_path / "tensorboard.log")  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/data/runs", timeout=30) as reply:
            assert set(json.loads(reply.read())) >= {r.run_uuid for r in runs}
        run = runs[0]
        url = f"{base}/data/plugin/scalars/scalars?run={run.run_uuid}&tag=eval/mrr@10"
        with urllib.request.urlopen(url, timeout=30) as reply:
            points = [(step, value) for _, step, value in json.loads(reply.read())]
        series = run.metrics["eval/mrr@10"]
        assert [step for step, _ in points] == series.steps
        # TensorBoard stores scalars as float32.
        assert [v for _, v in points] == pytest.approx(series.values, rel=1e-6)
        assert chromium_path(), "chromium is not installed (.ci/run installs Debian's chromium)"
        browser = Browser(tmp_path / "chromium-profile")
        try:
            wanted = ["AdamMultilr.learning_rate", "train.seed", LIST_HPARAM[0],
                      json.dumps(LIST_HPARAM[1]), *(r.run_uuid for r in runs)]  # fmt: skip
            text = browser.open_until(f"{base}/#hparams", wanted)
            browser.screenshot(tmp_path / "tensorboard_hparams.png")
            missing = [w for w in wanted if w not in text]
            assert not missing, f"not on the HParams page: {missing}\n{text[:3000]}"
            assert "eval/mrr@10" in text
        finally:
            browser.close()
    finally:
        _stop(server)
    assert (tmp_path / "tensorboard_hparams.png").stat().st_size > 10_000


@pytest.mark.slow
def test_mlflow_export_is_idempotent_and_served_by_mlflow_ui(store, tmp_path):
    pytest.importorskip("mlflow")
    from tests.browser import Browser, chromium_path

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = _cli("export", "mlflow", store, "--tracking-uri", uri)
    assert first.returncode == 0, first.stderr
    assert "exported 4 runs" in first.stdout and "(0 already there)" in first.stdout
    second = _cli("export", "mlflow", store, "--tracking-uri", uri)
    assert second.returncode == 0, second.stderr
    assert "exported 0 runs" in second.stdout and "(4 already there)" in second.stdout

    runs = {r.run_uuid: r for r in load_runs(store)}
    port = _free_port()
    server = _serve([str(BIN / "mlflow"), "server", "--backend-store-uri", uri, "--host",
                     "127.0.0.1", "--port", str(port), "--workers", "1"],
                    f"http://127.0.0.1:{port}/health", tmp_path / "mlflow.log")  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        experiment = _post(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 10})
        (exp,) = [e for e in experiment["experiments"] if e["name"] == "capreolus_opt"]
        query = {"experiment_ids": [exp["experiment_id"]], "max_results": 100}
        found = _post(f"{base}/api/2.0/mlflow/runs/search", query)["runs"]
        assert len(found) == 4, "a second export must add nothing"
        by_uuid = {}
        for entry in found:
            tags = {t["key"]: t["value"] for t in entry["data"]["tags"]}
            by_uuid[tags["capreolus_opt.run_uuid"]] = entry
        assert set(by_uuid) == set(runs)
        for run_uuid, entry in by_uuid.items():
            run = runs[run_uuid]
            info = entry["info"]
            assert info["status"] == "FINISHED"
            assert int(info["start_time"]) == int(_epoch_ms(run.start_time))
            assert int(info["end_time"]) == int(_epoch_ms(run.stop_time))
            params = {p["key"]: p["value"] for p in entry["data"]["params"]}
            assert params["AdamMultilr.learning_rate"] == str(
                run.hparams["AdamMultilr.learning_rate"]
            )
            assert params["AdamMultilr.pattern_lrs.0.patterns"] == json.dumps(LIST_HPARAM[1])
            metrics = {m["key"]: m["value"] for m in entry["data"]["metrics"]}
            assert metrics["eval/mrr_at_10"] == pytest.approx(run.final("eval/mrr@10"))
        assert chromium_path(), "chromium is not installed (.ci/run installs Debian's chromium)"
        browser = Browser(tmp_path / "chromium-profile")
        try:
            names = [by_uuid[u]["info"]["run_name"] for u in runs]
            assert all("learning_rate=" in n and "seed=" in n for n in names)
            text = browser.open_until(f"{base}/#/experiments/{exp['experiment_id']}/runs", names)
            browser.screenshot(tmp_path / "mlflow_runs.png")
            text += browser.text()  # the grid may fill in between the last poll and the shot
            assert all(n in text for n in names), text[:3000]
            entry = next(iter(by_uuid.values()))
            page = f"{base}/#/experiments/{exp['experiment_id']}/runs/{entry['info']['run_id']}"
            wanted = ["AdamMultilr.learning_rate", "AdamMultilr.pattern_lrs.0.patterns",
                      "train.seed", "eval/mrr_at_10"]  # fmt: skip
            text = browser.open_until(page, wanted)
            browser.screenshot(tmp_path / "mlflow_run.png")
            assert all(w in text for w in wanted), text[:3000]
        finally:
            browser.close()
    finally:
        _stop(server)
    assert (tmp_path / "mlflow_runs.png").stat().st_size > 10_000
