"""End to end: ``sweep --seeds`` on the smoke config trains real seeded runs into FileStorage,
SQLite and (with CAPREOLUS_TEST_POSTGRES_URL) a fresh PostgreSQL database; ``compare
--group-by``/``--baseline`` and ``plot --group-by`` read them back through the real CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from capreolus_opt.records.load import load_runs

# One worker runs the module, so the shared sweep trains once under xdist (--dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("seeds_end_to_end")]
REPO = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("CAPREOLUS_TEST_POSTGRES_URL")
SMOKE = ["train.num_steps = 2", "train.eval_every = 2", "train.checkpoint_every = 2",
         "train.metrics_every = 1"]  # fmt: skip
METRIC = "eval/mrr@10"


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "capreolus_opt.cli", *args], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def postgres_db():
    """A database of its own on the test server (dropped afterwards), or None without one."""
    if not POSTGRES_URL:
        yield None
        return
    import sqlalchemy as sa

    name = f"capreolus_seeds_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    yield sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(scope="module")
def seeded_sweep(tmp_path_factory, postgres_db):
    tmp = tmp_path_factory.mktemp("seeds")
    sources = [f"file://{tmp / 'runs'}", f"sqlite:///{tmp / 'runs.db'}"]
    if postgres_db:
        sources.append(postgres_db)
    argv = ["sweep", "gin_configs/smoke.gin", "--grid", "AdamMultilr.learning_rate=[1e-3, 3e-3]",
            "--seeds", "2", "--parallel", "2", "--workdir_root", str(tmp / "wd"),
            "--metric", METRIC]  # fmt: skip
    for binding in SMOKE:
        argv += ["--gin_param", binding]
    for url in sources:
        argv += ["--observer", url]
    proc = _cli(*argv, timeout=540)
    return proc, sources, tmp


def test_sweep_with_seeds_prints_one_row_per_point(seeded_sweep):
    proc, sources, _ = seeded_sweep
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 of 4 points succeeded" in proc.stdout
    table = proc.stdout.split("points succeeded\n", 1)[1].splitlines()
    assert table[0].split()[:4] == ["group", "n", "AdamMultilr.learning_rate", f"{METRIC}:mean"]
    rows = [line.split() for line in table[2:]]
    assert [(r[0], r[1], float(r[2])) for r in rows] == [("g1", "2", 1e-3), ("g2", "2", 3e-3)]
    runs = load_runs(sources[0])
    assert sorted((r.hparams["AdamMultilr.learning_rate"], r.seed) for r in runs) == [
        (1e-3, 0), (1e-3, 1), (3e-3, 0), (3e-3, 1)
    ]  # fmt: skip
    assert all(r.hparams["train.seed"] == r.seed for r in runs)


def test_compare_groups_agree_across_stores_and_with_scipy(seeded_sweep):
    proc, sources, _ = seeded_sweep
    assert proc.returncode == 0, proc.stderr
    outputs = []
    for source in sources:
        out = _cli("compare", source, "--metric", METRIC, "--baseline", "g1", "--format", "json")
        assert out.returncode == 0, out.stderr
        outputs.append(json.loads(out.stdout))
    for source, output in zip(sources[1:], outputs[1:], strict=True):
        assert output == outputs[0], f"{sources[0]} and {source} disagree"
    got = outputs[0]
    runs = load_runs(sources[0])
    finals = {lr: [r.final(METRIC) for r in runs if r.hparams["AdamMultilr.learning_rate"] == lr]
              for lr in (1e-3, 3e-3)}  # fmt: skip
    for group, lr in zip(got["groups"], (1e-3, 3e-3), strict=True):
        assert group["n"] == 2
        assert group[f"{METRIC}:mean"] == pytest.approx(np.mean(finals[lr]), rel=1e-12)
    (comparison,) = got["comparisons"]
    assert comparison["group"] == "g2" and comparison["test"] == "Welch t-test over runs (2 vs 2)"
    assert comparison["diff"] == pytest.approx(np.mean(finals[3e-3]) - np.mean(finals[1e-3]))
    if np.std(finals[1e-3]) + np.std(finals[3e-3]) > 0:
        ref = sps.ttest_ind(finals[3e-3], finals[1e-3], equal_var=False).pvalue
        assert comparison["p"] == pytest.approx(ref, rel=1e-10)
        assert comparison["p_holm"] == comparison["p"]  # one comparison: Holm changes nothing


def test_plot_and_latex_from_the_sweep(seeded_sweep):
    proc, sources, tmp = seeded_sweep
    assert proc.returncode == 0, proc.stderr
    png = tmp / "groups.png"
    out = _cli("plot", sources[1], "--metric", "train/loss", "--metric", METRIC, "--group-by",
               "-o", str(png), "--band", "ci")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert png.stat().st_size > 5_000
    tex = _cli("compare", sources[0], "--metric", METRIC, "--group-by", "--format", "latex")
    assert tex.returncode == 0, tex.stderr
    assert r"\begin{tabular}{lrr}" in tex.stdout and tex.stdout.count(r" \\") == 3


def test_seeds_conflicting_with_a_seed_binding_is_refused(tmp_path):
    out = _cli("sweep", "gin_configs/smoke.gin", "--seeds", "2", "--gin_param",
               "train.seed = 5", "--observer", f"file://{tmp_path / 'runs'}")  # fmt: skip
    assert out.returncode == 2
    assert "--seeds 2 conflicts with the binding 'train.seed = 5'" in out.stderr
    assert not (tmp_path / "runs").exists()
    dry = _cli("sweep", "gin_configs/smoke.gin", "--seeds", "3", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("train.seed = ") == 3
