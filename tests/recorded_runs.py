"""Fixtures: real Sacred runs written in the run-record contract's shape (docs/ARCHITECTURE.md).

The fixtures write through the observers that ``capreolus-opt train`` uses: Sacred's
``FileStorageObserver``, our :class:`~capreolus_opt.tracking.sql_observer.SqlMetricsObserver` (the
real SQL schema, metrics and results included) and ``MongoObserver`` over a ``mongomock`` client
(no MongoDB server can be installed here). Metric values are a closed-form function of the run's
inputs, so tests can compute expected values with NumPy.
"""

from __future__ import annotations

import argparse
import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from sacred import Experiment
from sacred.observers import FileStorageObserver, MongoObserver

from capreolus_opt.tracking.sql_observer import SqlMetricsObserver

GROUPS = ("encoder", "head")


def run_cli(argv: list[str]) -> int:
    """Parse ``argv`` with the runs sub-commands only and run the handler (in-process)."""
    from capreolus_opt.commands import runs as runs_cli

    parser = argparse.ArgumentParser(prog="capreolus-opt")
    runs_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@dataclasses.dataclass
class Spec:
    """Inputs of one fixture run; ``curves`` gives what the metric series must contain."""

    hparams: list[list[Any]]
    steps: int = 6
    fail: bool = False
    run_uuid: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def lr(self) -> float:
        return float(dict(self.hparams).get("AdamMultilr.learning_rate", 1e-3))

    def curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Expected series, float64: name -> (steps, values)."""
        steps = np.arange(1, self.steps + 1, dtype=np.float64)
        out = {
            # A loss with a bump at step 3, so min != final for some runs.
            "train/loss": (steps, 1.0 / (1.0 + self.lr * 1e3 * steps) + 0.3 * (steps == 3)),
        }
        for i, group in enumerate(GROUPS):
            out[f"group/{group}/lr"] = (steps, np.full_like(steps, self.lr * (i + 1)))
            out[f"group/{group}/grad_norm"] = (steps, (i + 1.0) / steps)
        eval_steps = steps[1::2]
        # Peaks mid-run, so best (max) != final.
        out["eval/mrr@10"] = (eval_steps, 0.5 + self.lr * 100 - 0.01 * (eval_steps - 3.5) ** 2)
        return out

    def group_table(self) -> list[dict[str, Any]]:
        lrs = dict(self.hparams)
        return [
            {"variable": "encoder/kernel", "shape": [4, 4], "params": 16, "group": "encoder",
             "pattern": "encoder/", "lr": lrs.get("AdamMultilr.learning_rate", 1e-3)},
            {"variable": "head/kernel", "shape": [4, 1], "params": 4, "group": "head",
             "pattern": "head/", "lr": 2 * lrs.get("AdamMultilr.learning_rate", 1e-3)},
        ]  # fmt: skip


def record_run(spec: Spec, observers: Sequence[Any]) -> None:
    """Run a small Sacred experiment writing ``spec`` through ``observers``."""
    ex = Experiment("fixture", save_git_info=False)
    ex.add_config(
        gin_files=["gin_configs/smoke.gin"],
        gin_bindings=[f"{k} = {v!r}" for k, v in spec.hparams],
        seed=0,
        hparams=spec.hparams,
    )
    ex.observers.extend(observers)

    @ex.main
    def main(_run: Any) -> dict[str, float]:
        _run.info.update(
            run_uuid=spec.run_uuid,
            gin_config="",
            operative_gin_config="",
            group_table=spec.group_table(),
            strategy={"kind": "default"},
            versions={},
        )
        curves = spec.curves()
        for name, (steps, values) in curves.items():
            for s, v in zip(steps, values, strict=True):
                _run.log_scalar(name, float(v), int(s))
        if spec.fail:
            raise RuntimeError("fixture failure")
        return {"mrr@10": float(curves["eval/mrr@10"][1][-1])}

    try:
        ex.run(options={"--capture": "no"})
    except RuntimeError:
        if not spec.fail:
            raise


@pytest.fixture
def mongo_client() -> Any:
    mongomock = pytest.importorskip("mongomock")
    gridfs_support = pytest.importorskip("mongomock.gridfs")

    gridfs_support.enable_gridfs_integration()
    return mongomock.MongoClient()


def mongo_observer(client: Any, db: str = "sacred") -> MongoObserver:
    """A MongoObserver over ``client`` (MongoObserver(client=) insists on a real MongoClient)."""
    import gridfs

    database = client[db]
    return MongoObserver.create_from(
        database["runs"], gridfs.GridFS(database), metrics_collection=database["metrics"]
    )


@pytest.fixture
def observers(tmp_path: Any, mongo_client: Any) -> dict[str, Any]:
    """Source strings and observer factories for one file, one SQLite and one Mongo store."""
    folder = tmp_path / "file_runs"
    sqlite_url = f"sqlite:///{tmp_path / 'runs.db'}"
    return {
        "file": str(folder),
        "sqlite": sqlite_url,
        "mongo": "mongodb://localhost:27017/sacred",
        "make_file": lambda: FileStorageObserver(str(folder)),
        "make_sql": lambda: SqlMetricsObserver(sqlite_url),
        "make_mongo": lambda: mongo_observer(mongo_client),
        "mongo_factory": lambda url: mongo_client,
    }


# Three runs differing in learning rate only, plus a shared constant.
def lr_specs(lrs: Sequence[float] = (1e-3, 3e-4, 1e-4)) -> list[Spec]:
    return [Spec(hparams=[["AdamMultilr.learning_rate", lr], ["train.steps", 6]]) for lr in lrs]
