"""A workdir belongs to one run: claim it before anything is recorded, hold it while training.

Two trainings writing checkpoints into one folder used to both end COMPLETED pointing at one
checkpoint (the other run's weights gone), and a new run with other hyperparameters in a finished
workdir trained 0 steps and recorded the old result under the new hyperparameters. Now:

- ``<workdir>/.capreolus-owner.json`` names the run that owns the folder (``run_uuid``, the
  ``pid``/``host`` of the process that last trained in it, start time, and the chain of runs that
  continued it). Only the owner may continue it, with ``--resume OWNER``; the resumed run then
  becomes the owner.
- ``<workdir>/.capreolus-owner.lock`` is held with an exclusive ``flock`` for the life of the
  training process. The kernel releases it when the process dies (SIGKILL, power loss), so a lock
  left by a dead process is never mistaken for a live one, and no pid guessing is needed. (flock
  is reliable on local filesystems; on NFS it depends on the server's lock daemon.)

Every refusal is a :class:`WorkdirError` (exit 2 from ``train``), raised before any observer has
recorded the run.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from capreolus_opt.storage.workdir_layout import OWNER_FILE, Workdir


class WorkdirError(ValueError):
    """The workdir belongs to another run, or another process is training in it."""


@dataclass
class WorkdirClaim:
    """A held workdir; :meth:`release` (or process exit) frees it.

    ``took_over`` describes the previous holder when this run continues a run that did not end
    cleanly (its process died holding the folder), for the command to report.
    """

    path: str
    run_uuid: str
    took_over: str | None = None
    _fd: int | None = field(default=None, repr=False)

    def release(self) -> None:
        """Drop the lock (the owner file stays: the folder still belongs to this run)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def _read_owner(path: str) -> dict[str, Any] | None:
    try:
        with open(Workdir(path).owner_file, encoding="utf-8") as f:
            owner = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise WorkdirError(
            f"workdir {path!r}: {OWNER_FILE} is unreadable ({exc}); it records which run owns the "
            "folder. Choose another --workdir, or delete the file if you know the folder is free."
        ) from None
    if not isinstance(owner, dict) or not isinstance(owner.get("run_uuid"), str):
        raise WorkdirError(f"workdir {path!r}: {OWNER_FILE} does not name an owner run_uuid.")
    return owner


def _write_owner(path: str, owner: dict[str, Any]) -> None:
    tmp = os.path.join(path, f".{OWNER_FILE}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(owner, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, Workdir(path).owner_file)


def _holder_text(owner: dict[str, Any] | None) -> str:
    if owner is None:
        return "another process (no owner recorded yet)"
    return (
        f"run {owner['run_uuid']} (pid {owner.get('pid', '?')} on {owner.get('host', '?')}, "
        f"started {owner.get('started', '?')})"
    )


def _lock(path: str) -> int:
    fd = os.open(Workdir(path).lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = _holder_text(_read_owner(path))
        raise WorkdirError(
            f"workdir {path!r} is in use by {holder}: another training is writing checkpoints "
            "there. Wait for it to finish or choose another --workdir."
        ) from None
    return fd


def _check_owner(path: str, owner: dict[str, Any] | None, resumes: str | None) -> None:
    if owner is None:
        if resumes is None and Workdir(path).has_checkpoints():
            raise WorkdirError(
                f"workdir {path!r} already holds checkpoints of a run that recorded no owner; "
                "continue it with --resume RUN, or choose another --workdir."
            )
        return
    if resumes == owner["run_uuid"]:
        return
    if resumes is None:
        raise WorkdirError(
            f"workdir {path!r} belongs to run {owner['run_uuid']}: a new run would continue its "
            f"checkpoint under other settings. Choose another --workdir, or continue that run "
            f"with --resume {owner['run_uuid']}."
        )
    raise WorkdirError(
        f"workdir {path!r} belongs to run {owner['run_uuid']}, not to run {resumes} that "
        f"--resume names (it was continued since); resume {owner['run_uuid']}, or give "
        "another --workdir."
    )


def claim(path: str, *, run_uuid: str, resumes: str | None = None) -> WorkdirClaim:
    """Take ``path`` for run ``run_uuid``; ``resumes`` is the run it continues (``--resume``).

    Raises:
        WorkdirError: another live process holds the folder, or it belongs to a run other than
            ``resumes`` (or to any run, when ``resumes`` is None).
    """
    path = os.path.abspath(path)
    try:
        os.makedirs(path, exist_ok=True)
        fd = _lock(path)
    except OSError as exc:
        raise WorkdirError(f"workdir {path!r} cannot be created or locked: {exc}") from None
    try:
        owner = _read_owner(path)
        _check_owner(path, owner, resumes)
        took_over = None
        if owner is not None and owner.get("state") == "training":
            took_over = f"{_holder_text(owner)} did not finish (its process is gone)"
        chain = [*(owner or {}).get("chain", []), *([owner["run_uuid"]] if owner else [])]
        _write_owner(path, _owner_record(run_uuid, chain, "training"))
    except BaseException:
        os.close(fd)
        raise
    return WorkdirClaim(path=path, run_uuid=run_uuid, took_over=took_over, _fd=fd)


def _owner_record(run_uuid: str, chain: list[str], state: str) -> dict[str, Any]:
    return {
        "run_uuid": run_uuid,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "state": state,
        "chain": chain,
    }


def finish(claim_: WorkdirClaim) -> None:
    """Mark the training in ``claim_`` as ended by its process (any status) and release it."""
    try:
        owner = _read_owner(claim_.path)
        if owner is not None and owner["run_uuid"] == claim_.run_uuid:
            _write_owner(claim_.path, {**owner, "state": "ended"})
    except (OSError, WorkdirError):
        pass  # the lock below is what matters; a stale "training" state is only reported
    finally:
        claim_.release()


def is_chief_process(environ: Any = os.environ) -> bool:
    """False for a non-chief multi-worker process (TF_CONFIG): those share the chief's workdir."""
    try:
        task = json.loads(environ.get("TF_CONFIG") or "{}").get("task") or {}
        cluster = json.loads(environ.get("TF_CONFIG") or "{}").get("cluster") or {}
    except ValueError:
        return True
    kind, index = task.get("type"), int(task.get("index", 0))
    if not kind:
        return True
    if "chief" in cluster:
        return kind == "chief"
    return kind == "worker" and index == 0
