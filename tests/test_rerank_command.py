"""``capreolus-opt rerank``: cheap to register, and bad arguments exit 2 with a clear message."""

from __future__ import annotations

import pytest

from tests.cli_helpers import heavy_imports, run_cli

HEAVY = ("tensorflow", "keras", "gin", "sacred", "ir_measures", "bm25s")


@pytest.mark.slow
def test_registering_rerank_imports_nothing_heavy():
    code = (
        "import argparse\n"
        "from capreolus_opt.commands import rerank\n"
        "rerank.register(argparse.ArgumentParser().add_subparsers())\n"
    )
    assert heavy_imports(code, HEAVY) == []


@pytest.mark.slow
def test_bad_arguments_exit_2(tmp_path):
    common = ["--run-file", "r", "--topics", "t", "--collection", "c"]
    proc = run_cli("rerank", str(tmp_path), *common, "-o", str(tmp_path / "no" / "x.run"))
    assert proc.returncode == 2
    assert f"the folder {tmp_path / 'no'} does not exist" in proc.stderr
    proc = run_cli("rerank", "not-a-run", *common, "-o", str(tmp_path / "x.run"))
    assert proc.returncode == 2 and "neither a run folder" in proc.stderr
    proc = run_cli("rerank", str(tmp_path), *common, "--top-k", "0", "-o", str(tmp_path / "x"))
    assert proc.returncode == 2 and "--top-k must be >= 1, got 0" in proc.stderr
    (tmp_path / "best").mkdir()
    proc = run_cli("rerank", str(tmp_path), *common, "-o", str(tmp_path / "x.run"))
    assert proc.returncode == 2 and "holds no saved reranker" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.run").exists()
