"""Helpers for the search tests: configs with a group-lr macro, a scratch PostgreSQL database,
reading a study back."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("CAPREOLUS_TEST_POSTGRES_URL")

# Every group's lr is the macro LR, so `--space 'LR=...'` searches the group rates by name. At
# step 8 of this training (seeded), LR = 1e-2 scores ndcg@10 0.427 and LR = 1e-7 scores 0.505
# (measured): after a 1e-7 trial, the median pruner stops a 1e-2 trial at its first evaluation.
LR_MACRO_GIN = """include 'smoke.gin'
LR = 3e-3
AdamMultilr.learning_rate = %LR
AdamMultilr.pattern_lrs = [
    {"name": "embedding", "patterns": ["^embedding/"], "lr": %LR},
    {"name": "encoder", "patterns": ["^encoder/"], "lr": %LR},
]
train.num_steps = 24
train.eval_every = 8
train.checkpoint_every = 8
train.metrics_every = 4
"""


def scratch_configs(tmp_path: Path, extra: str = "") -> str:
    """Copy gin_configs/ into ``tmp_path`` and add ``lr_macro.gin``; return its path."""
    shutil.copytree(ROOT / "gin_configs", tmp_path / "gin_configs")
    path = tmp_path / "gin_configs" / "lr_macro.gin"
    path.write_text(LR_MACRO_GIN + extra)
    return str(path)


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    """A fresh database on the test server; its URL (dropped afterwards)."""
    import sqlalchemy as sa

    name = f"tune_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base, _, query = POSTGRES_URL.partition("?")
    url = base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def study_trials(name: str, storage: str) -> list:
    """The trials of study ``name`` (its storage's connections closed again)."""
    import optuna

    from capreolus_opt.search.storage import open_storage

    backend = open_storage(storage)
    try:
        return optuna.load_study(study_name=name, storage=backend).trials
    finally:
        engine = getattr(backend, "engine", None)  # RDB storage: pooled connections
        if engine is not None:
            backend.remove_session()
            engine.dispose()


def cli_env() -> dict[str, str]:
    """The environment for CLI subprocesses: this worktree's package first on PYTHONPATH."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONUNBUFFERED": "1"}  # fmt: skip
