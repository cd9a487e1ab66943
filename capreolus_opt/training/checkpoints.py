"""Checkpoints of model, optimizer and step in ``workdir`` (``tf.train.CheckpointManager``).

A checkpoint holds the model's variables, the optimizer's (iteration count, moments, group
learning-rate variables) and the number of completed steps, which is also the data position: the
training dataset is deterministic per seed, so resuming skips that many global batches.

Under ``MultiWorkerMirroredStrategy`` every worker must take part in saving (saving reads
distributed variables); the chief writes to ``workdir`` and the other workers to a temporary
folder that is removed after each save (the pattern of the TF multi-worker tutorial).
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import tensorflow as tf


class CheckpointState:
    """Owns the ``tf.train.Checkpoint`` and its manager for one training run."""

    def __init__(
        self,
        *,
        workdir: str,
        model: Any,
        optimizer: Any,
        chief: bool,
        worker_id: int,
        max_to_keep: int,
    ) -> None:
        # Created by the caller inside strategy.scope(), so that it is mirrored under a strategy.
        self.step = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            name="global_step",
        )
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=self.step)
        self.workdir = workdir
        self._chief = chief
        self._directory = workdir if chief else os.path.join(workdir, f".worker_tmp_{worker_id}")
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self._directory, max_to_keep=max_to_keep
        )
        # Non-chief workers restore from the chief's folder.
        self._reader = (
            tf.train.CheckpointManager(self.checkpoint, workdir, max_to_keep=None)
            if not chief
            else self.manager
        )
        self.last_saved_step: int | None = None

    def restore_latest(self) -> int:
        """Restore the newest checkpoint in ``workdir``; return its step (0 when there is none).

        Raises:
            ValueError: the checkpoint does not match the model/optimizer built now.
        """
        latest = self._reader.latest_checkpoint
        if latest is None:
            return 0
        status = self.checkpoint.restore(latest)
        try:
            status.assert_existing_objects_matched()
        except AssertionError as err:
            raise ValueError(
                f"checkpoint {latest} does not match the model and optimizer of this run "
                f"(different task or optimizer groups in the same workdir?): {err}"
            ) from err
        step = int(self.step.numpy())
        self.last_saved_step = step
        return step

    def save(self, step: int) -> str:
        """Write a checkpoint for ``step`` completed steps; return its path (the chief's)."""
        self.step.assign(step)
        path = self.manager.save(checkpoint_number=step)
        if not self._chief:
            shutil.rmtree(self._directory, ignore_errors=True)
            path = os.path.join(self.workdir, os.path.basename(path))
        self.last_saved_step = step
        return path

    @property
    def latest_path(self) -> str | None:
        return self._reader.latest_checkpoint


class StopRequest:
    """Set by SIGINT/SIGTERM; the loop checks it between step calls."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __bool__(self) -> bool:
        return self.signal is not None


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Install SIGINT/SIGTERM handlers that only record the signal (a flag checked between
    steps, so a checkpoint is never written from the middle of a step). The previous handlers
    come back on exit. Outside the main thread, signals cannot be caught: nothing is installed."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: Any) -> None:
        request.signal = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
