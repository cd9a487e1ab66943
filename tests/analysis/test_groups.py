"""``compare --group-by`` / ``--baseline`` / paper tables on seeded runs in file + SQLite stores.

Expected numbers come from NumPy/SciPy on the same hand-made values.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sacred.observers import FileStorageObserver
from scipy import stats as sps

from capreolus_opt.tracking.sql_observer import SqlMetricsObserver
from tests.recorded_runs import run_cli
from tests.seeded_runs import record_seeded

# learning rate -> final eval/mrr@10 of seeds 0, 1, 2
VALUES = {1e-3: [0.80, 0.82, 0.85], 3e-3: [0.70, 0.74, 0.71], 1e-2: [0.79, 0.83, 0.80]}
QIDS = [f"q{i}" for i in range(8)]


def _per_query(lr: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(int(lr * 1e4) * 10 + seed)
    shift = {1e-3: 0.1, 3e-3: 0.0, 1e-2: 0.02}[lr]
    return {q: float(np.clip(0.4 + shift + 0.05 * i + rng.normal(0, 0.03), 0, 1))
            for i, q in enumerate(QIDS)}  # fmt: skip


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("seeded")
    folder, db = tmp_path / "runs", f"sqlite:///{tmp_path / 'runs.db'}"
    for lr, values in VALUES.items():
        for seed, value in enumerate(values):
            observers = [FileStorageObserver(str(folder)), SqlMetricsObserver(db)]
            record_seeded(
                observers, tmp_path, lr=lr, seed=seed, value=value,
                per_query=_per_query(lr, seed), loss=1.0 - value,
            )  # fmt: skip
    return {"file": str(folder), "sqlite": db}


def _json(capsys, argv):
    assert run_cli(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_group_by_default_groups_seeds_with_scipy_summaries(seeded, capsys, kind):
    out = _json(capsys, ["compare", seeded[kind], "--metric", "eval/mrr@10", "--format",
                         "json", "--group-by"])  # fmt: skip
    groups = out["groups"]
    assert [g["group"] for g in groups] == ["g1", "g2", "g3"]
    # Only the setting that differs between groups is shown (not train.seed, not num_steps).
    assert set(groups[0]) - {"label", "runs"} == {
        "group", "n", "AdamMultilr.learning_rate", *(f"eval/mrr@10:{f}" for f in
                                                     ("mean", "std", "ci95_low", "ci95_high"))
    }  # fmt: skip
    for group, (lr, values) in zip(groups, VALUES.items(), strict=True):
        assert group["AdamMultilr.learning_rate"] == lr and group["n"] == 3
        assert group["label"] == f"learning_rate={lr:g}"
        low, high = sps.t.interval(0.95, 2, loc=np.mean(values), scale=sps.sem(values))
        assert group["eval/mrr@10:mean"] == pytest.approx(np.mean(values), rel=1e-12)
        assert group["eval/mrr@10:std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
        assert group["eval/mrr@10:ci95_low"] == pytest.approx(low, rel=1e-12)
        assert group["eval/mrr@10:ci95_high"] == pytest.approx(high, rel=1e-12)
    explicit = _json(capsys, ["compare", seeded[kind], "--metric", "eval/mrr@10", "--format",
                              "json", "--group-by", "learning_rate"])  # fmt: skip
    assert [g["runs"] for g in explicit["groups"]] == [g["runs"] for g in groups]


def test_text_table_is_one_row_per_group(seeded, capsys):
    assert run_cli(["compare", seeded["file"], "--metric", "eval/mrr@10", "--group-by",
                    "--sort=-eval/mrr@10"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["group", "n", "AdamMultilr.learning_rate"]
    assert [ln.split()[0] for ln in lines[2:]] == ["g1", "g3", "g2"]  # by mean, descending


def test_baseline_without_per_query_uses_welch(seeded, capsys):
    # train/loss has no per-query file: Welch over the seeds' final values.
    out = _json(capsys, ["compare", seeded["sqlite"], "--metric", "train/loss", "--metric",
                         "eval/mrr@10", "--baseline", "g2", "--format", "json"])  # fmt: skip
    assert out["baseline"] == "g2"
    welch = [c for c in out["comparisons"] if c["metric"] == "train/loss"]
    assert [c["group"] for c in welch] == ["g1", "g3"]
    base = 1.0 - np.array(VALUES[3e-3])
    for row, lr in zip(welch, (1e-3, 1e-2), strict=True):
        mine = 1.0 - np.array(VALUES[lr])
        assert row["test"] == "Welch t-test over runs (3 vs 3)"
        assert row["p"] == pytest.approx(sps.ttest_ind(mine, base, equal_var=False).pvalue)
        assert row["diff"] == pytest.approx(mine.mean() - base.mean(), rel=1e-12)
    # Holm's family is every t-kind comparison: 2 Welch (loss) + 2 paired t (mrr) here.
    t_kind = [c for c in out["comparisons"] if "randomisation" not in c["test"]]
    assert len(t_kind) == 4
    ps = sorted(c["p"] for c in t_kind)
    smallest = min(c for c in t_kind if c["p"] == ps[0])
    assert smallest["p_holm"] == pytest.approx(min(1.0, 4 * ps[0]), rel=1e-12)


def test_baseline_with_per_query_is_paired_and_matches_scipy(seeded, capsys):
    out = _json(capsys, ["compare", seeded["file"], "--metric", "eval/mrr@10", "--baseline",
                         "learning_rate=3e-3", "--format", "json"])  # fmt: skip
    assert out["baseline"] == "g2"
    base = np.mean([[_per_query(3e-3, s)[q] for q in QIDS] for s in range(3)], axis=0)
    rows = {(c["group"], c["test"].split(" over ")[0]): c for c in out["comparisons"]}
    t_p, perm_p = [], []
    for gid, lr in (("g1", 1e-3), ("g3", 1e-2)):
        mine = np.mean([[_per_query(lr, s)[q] for q in QIDS] for s in range(3)], axis=0)
        t = rows[(gid, "paired t-test")]
        assert t["test"] == "paired t-test over 8 queries"
        assert t["p"] == pytest.approx(sps.ttest_rel(mine, base).pvalue, rel=1e-10)
        assert t["diff"] == pytest.approx(np.mean(mine - base), rel=1e-10)
        perm = rows[(gid, "randomisation test")]
        assert "exact, 256 sign flips" in perm["test"]
        ref = sps.permutation_test((mine, base), lambda x, y: np.mean(x - y),
                                   permutation_type="samples", vectorized=False)  # fmt: skip
        assert perm["p"] == pytest.approx(ref.pvalue, rel=1e-10)
        t_p.append(t["p"])
        perm_p.append(perm["p"])
    # Holm over the two comparisons of each test kind.
    for ps, test in ((t_p, "paired t-test"), (perm_p, "randomisation test")):
        lo, hi = sorted(ps)
        expected = {lo: min(1, 2 * lo), hi: max(min(1, 2 * lo), hi)}
        for gid in ("g1", "g3"):
            row = rows[(gid, test)]
            assert row["p_holm"] == pytest.approx(expected[row["p"]], rel=1e-12)


def test_latex_paper_table_structure(seeded, capsys):
    argv = ["compare", seeded["file"], "--metric", "eval/mrr@10", "--metric", "train/loss",
            "--baseline", "g2", "--format", "latex"]  # fmt: skip
    assert run_cli(argv) == 0
    tex = capsys.readouterr().out
    lines = [ln.strip() for ln in tex.strip().splitlines()]
    assert lines[1] == r"\begin{table}[t]" and lines[-1] == r"\end{table}"
    spec = re.search(r"\\begin\{tabular\}\{([lr]+)\}", tex).group(1)
    assert spec == "lrrr"
    order = [lines.index(x) for x in (r"\toprule", r"\midrule", r"\bottomrule")]
    assert order == sorted(order)
    rows = lines[order[1] + 1 : order[2]]
    assert len(rows) == 3 and all(r.endswith(r"\\") for r in rows)
    assert all(r.count("&") == len(spec) - 1 for r in [lines[order[0] + 1], *rows])
    assert rows[0].startswith(r"learning\_rate=0.001 & 3 & \textbf{0.8233} $\pm$ 0.0252")
    assert "(baseline)" in rows[1] and r"\dagger" not in rows[1]
    # g1 beats the baseline on every query by ~0.1: both paired tests mark it.
    assert r"$^{\dagger}$" in rows[0] and r"$^{\ddagger}$" in rows[0]
    note = lines[-2]
    assert note.startswith(r"{\footnotesize Mean $\pm$ sample standard deviation")
    assert r"$^{\dagger}$: different from the baseline (g2: learning\_rate=0.003)" in note
    assert "Welch t-test / paired t-test" in note and r"$^{\ddagger}$" in note
    assert tex.count("{") == tex.count("}")


def test_markdown_paper_table(seeded, capsys):
    argv = ["compare", seeded["file"], "--metric", "eval/mrr@10", "--baseline", "g2",
            "--format", "markdown"]  # fmt: skip
    assert run_cli(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| Setting | n | eval/mrr@10 |" and lines[1] == "|---|--:|--:|"
    assert lines[2].startswith("| learning_rate=0.001 | 3 | **0.8233** ± 0.0252 †")
    assert "(baseline)" in lines[3]
    assert lines[-1].startswith("Mean ± sample standard deviation") and "† :" not in lines[-1]
    assert "†: different from the baseline (g2: learning_rate=0.003)" in lines[-1]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--baseline", "g9"], "--baseline 'g9' names no single group; groups are: g1"),
        (["--group-by", "nosuch"], "no run has hyperparameter 'nosuch'"),
        (["--baseline", "g1", "--alpha", "5"], "--alpha must be in (0, 1)"),
    ],
)
def test_bad_group_options_exit_2(seeded, capsys, extra, message):
    assert run_cli(["compare", seeded["file"], *extra]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
