"""Checkpoints of model, optimizer and step in ``workdir`` (``tf.train.CheckpointManager``).

A checkpoint holds the model's variables, the optimizer's (iteration count, moments, group
learning-rate variables) and the number of completed steps, which is also the data position: the
training dataset is deterministic per seed, so resuming skips that many global batches.

Under ``MultiWorkerMirroredStrategy`` every worker must take part in saving (saving reads
distributed variables); the chief writes to ``workdir`` and the other workers to a temporary
folder that is removed after each save (the pattern of the TF multi-worker tutorial).

Damaged checkpoints (TF 2.21 alone raises ``IndexError: Read less bytes than requested`` for a
truncated data file, ``not an sstable`` for a truncated index, and silently starts from step 0
when the ``checkpoint`` state file is garbage): ``restore_latest`` tries the checkpoints newest
first, warns with :class:`CheckpointFallbackWarning` naming each unreadable file it skips, and
raises :class:`CheckpointReadError` naming the files when none can be read. It never restarts
from step 0 while the folder holds checkpoints, readable or not.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import tensorflow as tf

from capreolus_opt.storage.workdir_layout import CHECKPOINT_PREFIX, Workdir

_NUMBERED = re.compile(rf"^{re.escape(CHECKPOINT_PREFIX)}-(\d+)\.index$")


class CheckpointReadError(ValueError):
    """No checkpoint in the workdir can be read; the message names the damaged files."""


class CheckpointFallbackWarning(UserWarning):
    """A damaged checkpoint (or state file) was skipped for an older one; names the file."""


def _damaged_file(prefix: str) -> str:
    """The file of checkpoint ``prefix`` that is unreadable: its index, else its data."""
    try:
        tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError, IndexError):
        return f"{prefix}.index"
    data = sorted(tf.io.gfile.glob(f"{prefix}.data-*"))
    return ", ".join(data) if data else f"{prefix}.data-00000-of-00001 (missing)"


def _read_state(workdir: str) -> Any:
    """The parsed state file, or None when it cannot be parsed (TF returns None for bad text
    but raises UnicodeDecodeError for bytes that are not UTF-8)."""
    try:
        return tf.train.get_checkpoint_state(workdir)
    except UnicodeDecodeError:
        return None


def checkpoint_candidates(workdir: str) -> tuple[list[str], str | None]:
    """Checkpoint prefixes in ``workdir``, newest first, and a problem with the state file.

    The ``checkpoint`` state file lists them; when it is missing or cannot be parsed, the
    ``ckpt-N.index`` files in the folder do (and the problem names the state file).
    """
    if not tf.io.gfile.isdir(workdir):
        return [], None
    state_file = Workdir(workdir).checkpoint_state
    exists = tf.io.gfile.exists(state_file)
    state = _read_state(workdir) if exists else None
    if state is not None and state.model_checkpoint_path:
        paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
        if state.model_checkpoint_path not in paths:
            paths.append(state.model_checkpoint_path)
        return paths[::-1], None
    found = []
    for name in tf.io.gfile.listdir(workdir):
        match = _NUMBERED.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(workdir, name[: -len(".index")])))
    if not found and not exists:
        return [], None
    what = "is unreadable (not a checkpoint list)" if exists else "is missing"
    return [p for _, p in sorted(found, reverse=True)], f"checkpoint state file {state_file} {what}"


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
        extra: dict[str, Any] | None = None,
    ) -> None:
        # Created by the caller inside strategy.scope(), so that it is mirrored under a strategy.
        self.step = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            name="global_step",
        )
        # `extra`: more state to save beside them (the loss scale under mixed_float16).
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, step=self.step, **(extra or {})
        )
        self.workdir = workdir
        self._chief = chief
        layout = Workdir(workdir)
        self._directory = layout.checkpoints if chief else layout.worker_checkpoints(worker_id)
        # Every worker restores from the chief's folder, read before the manager exists: the
        # manager's constructor raises on a state file that is not UTF-8.
        self._candidates, self._problem = checkpoint_candidates(workdir)
        if chief and self._candidates and self._problem and "unreadable" in self._problem:
            aside = layout.checkpoint_state_aside
            tf.io.gfile.rename(layout.checkpoint_state, aside, overwrite=True)
            self._problem += f" (moved aside to {aside})"
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            self._directory,
            max_to_keep=max_to_keep,
            checkpoint_name=CHECKPOINT_PREFIX,
        )
        self.last_saved_step: int | None = None
        self._last_path: str | None = None
        #: the checkpoint ``restore_latest`` restored (None: none, started at step 0)
        self.restored_path: str | None = None

    def restore_latest(self) -> int:
        """Restore the newest readable checkpoint in ``workdir``; return its step (0 when the
        folder holds none). Each damaged one skipped is a :class:`CheckpointFallbackWarning`.

        Raises:
            CheckpointReadError: checkpoints exist but none can be read (names the files).
            ValueError: the checkpoint does not match the model/optimizer built now.
        """
        damaged = [self._problem] if self._problem else []
        for path in self._candidates:
            if damaged:
                warnings.warn(
                    f"{damaged[-1]}; falling back to checkpoint {path}",
                    CheckpointFallbackWarning,
                    stacklevel=4,  # train()'s caller
                )
            try:
                self._restore(path)
            except (tf.errors.OpError, IndexError) as err:
                reason = f"{type(err).__name__}: {err}"
                damaged.append(f"{_damaged_file(path)} cannot be read ({reason})")
                continue
            self.restored_path = path
            self.last_saved_step = int(self.step.numpy())
            return self.last_saved_step
        if damaged:
            raise CheckpointReadError(
                f"no readable checkpoint in {self.workdir}: {'; '.join(damaged)}. Refusing to "
                "start again from step 0 over them: restore the files, or remove the checkpoint "
                "files (ckpt-*, checkpoint) or use another workdir to start afresh."
            )
        return 0

    def _restore(self, path: str) -> None:
        mismatch = None
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError) as err:  # ValueError: a shape differs
            mismatch = err
        if mismatch is not None:
            raise ValueError(
                f"checkpoint {path} does not match the model and optimizer of this run "
                f"(different task or optimizer groups in the same workdir?): {mismatch}"
            ) from mismatch

    def save(self, step: int) -> str:
        """Write a checkpoint for ``step`` completed steps; return its path (the chief's)."""
        self.step.assign(step)
        path = self.manager.save(checkpoint_number=step)
        if not self._chief:
            shutil.rmtree(self._directory, ignore_errors=True)
            path = os.path.join(self.workdir, os.path.basename(path))
        self.last_saved_step = step
        self._last_path = path
        return path

    @property
    def latest_path(self) -> str | None:
        """The newest checkpoint: the one written last, else the one restored."""
        if self._chief and self.manager.latest_checkpoint:
            return self.manager.latest_checkpoint
        return self._last_path or self.restored_path


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
