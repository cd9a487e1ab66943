"""Seeded fixture runs for the grouping tests, written by real Sacred observers.

Each run has ``AdamMultilr.learning_rate``, ``train.seed`` and a constant ``train.num_steps`` as
hyperparameters; its final ``eval/mrr@10`` is ``value`` and, when ``per_query`` is given, it
stores ``per_query_eval.tsv`` as an artifact (the per-query contract, records/per_query.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from sacred import Experiment


def record_seeded(
    observers: list,
    tmp_path: Any,
    *,
    lr: float,
    seed: int,
    value: float,
    per_query: dict[str, float] | None = None,
    loss: float = 0.5,
    extra: tuple = (),
) -> str:
    """Write one COMPLETED run through ``observers``; returns its run UUID."""
    run_uuid = uuid.uuid4().hex
    hparams = [["AdamMultilr.learning_rate", lr], ["train.num_steps", 8], ["train.seed", seed],
               *map(list, extra)]  # fmt: skip
    ex = Experiment("grouped", save_git_info=False)
    ex.add_config(
        gin_files=["gin_configs/smoke.gin"],
        gin_bindings=[f"AdamMultilr.learning_rate = {lr!r}", f"train.seed = {seed}"],
        seed=seed,
        hparams=hparams,
    )
    ex.observers.extend(observers)

    @ex.main
    def main(_run: Any) -> dict:
        _run.info.update(run_uuid=run_uuid, group_table=[])
        _run.log_scalar("train/loss", loss + 0.1, 4)
        _run.log_scalar("train/loss", loss, 8)
        _run.log_scalar("eval/mrr@10", value - 0.05, 4)
        _run.log_scalar("eval/mrr@10", value, 8)
        if per_query is not None:
            path = tmp_path / f"pq_{run_uuid}.tsv"
            path.write_text("".join(f"{q}\tmrr@10\t{v!r}\n" for q, v in per_query.items()))
            _run.add_artifact(str(path), "per_query_eval.tsv")
        return {"mrr@10": value}

    ex.run(options={"--capture": "no"})
    return run_uuid
