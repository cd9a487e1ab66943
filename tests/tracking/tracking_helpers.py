"""Helpers shared by the tracking tests: run the ``train`` CLI in-process on the fake backend.

A module of its own (not conftest.py): ``from conftest import`` picks whichever conftest module
was imported first when several test folders are collected in one session.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from capreolus_opt.commands import train as cli
from tests.tracking import fake_backend

POSTGRES_URL = os.environ.get("CAPREOLUS_TEST_POSTGRES_URL")
needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="CAPREOLUS_TEST_POSTGRES_URL is not set (CI sets it)"
)


def train(argv: list[str], backend=fake_backend) -> int:
    """``capreolus-opt train ARGV`` in this process with ``backend`` (fake by default)."""
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return cli.handle_train(parser.parse_args(["train", *argv]), backend=backend)


def write_gin(path: Path, **bindings) -> str:
    """Write a fake-backend config file (``train.<name> = value`` lines)."""
    path.write_text("".join(f"train.{k} = {json.dumps(v)}\n" for k, v in bindings.items()))
    return str(path)


def expected_points(steps: range) -> dict[str, list[tuple[int, float]]]:
    """Every (step, value) the fake loop logs over ``steps``, by metric name."""
    out: dict[str, list[tuple[int, float]]] = {}
    for step in steps:
        for name, value in fake_backend.metrics_at(step).items():
            out.setdefault(name, []).append((step, value))
    return out


def file_runs(basedir: Path) -> list[Path]:
    return sorted((p for p in basedir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def file_metrics(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    data = json.loads((run_dir / "metrics.json").read_text())
    return {k: list(zip(v["steps"], v["values"], strict=True)) for k, v in data.items()}


def sql_metrics(url: str, run_uuid: str) -> dict[str, list[tuple[int, float]]]:
    """Read back the metrics of one run (by info.run_uuid) from our SQL ``metrics`` table."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            (run_id,) = [
                rid
                for rid, info in conn.execute(sa.text("SELECT id, info FROM run"))
                if json.loads(info or "{}").get("run_uuid") == run_uuid
            ]
            rows = conn.execute(
                sa.text("SELECT name, step, value FROM metrics WHERE run_id = :r ORDER BY id"),
                {"r": run_id},
            )
            out: dict[str, list[tuple[int, float]]] = {}
            for name, step, value in rows:
                out.setdefault(name, []).append((step, value))
            return out
    finally:
        engine.dispose()
