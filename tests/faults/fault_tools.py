"""Real faults for the fault-injection suite: a private PostgreSQL server, a small tmpfs, and a
``capreolus-opt train`` process the test can pause (SIGSTOP), resume and kill.

The PostgreSQL server is a cluster this module creates (``initdb`` as the ``postgres`` user, in a
temporary folder, on a free port, trust authentication over its own Unix socket) and owns: the
tests stop and start it at will and never touch the machine's shared cluster. Filling a disk
uses a real ``tmpfs`` mount (the tests run as root, as CI does).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "gin_configs" / "smoke.gin")


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in versions:
        if (folder / name).exists():
            return str(folder / name)
    raise FileNotFoundError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")


def can_run_postgres() -> str | None:
    """None when a private cluster can be made here, else why not (for a skip reason)."""
    if os.geteuid() != 0:
        return "needs root (to run initdb/pg_ctl as the postgres user)"
    try:
        pwd.getpwnam("postgres")
        _pg_bin("initdb")
    except (KeyError, FileNotFoundError) as exc:
        return f"PostgreSQL server binaries or the postgres user are missing: {exc}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """A throw-away PostgreSQL server owned by one test."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="capreolus-faults-pg-")
        self.port = _free_port()
        self.data = os.path.join(self.dir, "data")
        user = pwd.getpwnam("postgres")
        os.chmod(self.dir, 0o755)
        os.chown(self.dir, user.pw_uid, user.pw_gid)
        # Superuser "root": root's peer/trust login over the socket needs no password.
        self._as_postgres(
            [_pg_bin("initdb"), "-D", self.data, "-U", "root", "--auth=trust", "-E", "UTF8"]
        )
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write(f"port = {self.port}\nunix_socket_directories = '{self.dir}'\n")
            conf.write("listen_addresses = ''\nfsync = off\n")
        self.url = f"postgresql+psycopg:///postgres?host={self.dir}&port={self.port}"

    def _as_postgres(self, argv: list[str]) -> None:
        command = " ".join(f"'{a}'" for a in argv)
        subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c", command],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        log = os.path.join(self.dir, "server.log")
        self._as_postgres([_pg_bin("pg_ctl"), "-D", self.data, "-l", log, "-w", "start"])

    def stop(self) -> None:
        self._as_postgres([_pg_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"])

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` (e.g. ``"4m"``), unmounted afterwards."""
    mount_point = Path(tempfile.mkdtemp(prefix="capreolus-faults-tmpfs-"))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)
        mount_point.rmdir()


def can_mount_tmpfs() -> str | None:
    """None when tmpfs can be mounted here, else why not."""
    if os.geteuid() != 0:
        return "needs root to mount a tmpfs"
    try:
        with tmpfs("64k"):
            return None
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"mounting a tmpfs is not permitted here: {exc}"


def fill(folder: Path) -> Path:
    """Write a file into ``folder`` until its filesystem is full; return the file."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)
    return filler


def smoke_args(num_steps: int, *extra: str) -> list[str]:
    """Smoke config for a run of ``num_steps`` with a train/loss point every 2 steps."""
    return [
        SMOKE,
        "--gin_param", f"train.num_steps = {num_steps}",
        "--gin_param", "train.eval_every = 0",
        "--gin_param", "train.checkpoint_every = 50",
        "--beat_every", "0.5",
        *extra,
    ]  # fmt: skip


class TrainProcess:
    """``capreolus-opt train ARGS`` in a subprocess, to pause, continue or kill."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = str(ROOT)
        self.out = open(cwd / f"train-{time.monotonic_ns()}.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "capreolus_opt.cli", "train", *args],
            cwd=cwd,
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def cont(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=60)

    def wait(self, timeout: float = 300) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        self.out.seek(0)
        return code, self.out.read()

    def output(self) -> str:
        self.out.flush()
        with open(self.out.name) as f:
            return f.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.cont()
            self.kill()
        self.out.close()


def wait_until(condition: Callable[[], object], what: str, timeout: float = 240) -> object:
    """Poll ``condition`` every 0.1 s until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def only_run_folder(basedir: Path) -> Path | None:
    """The one numbered run folder under ``basedir`` (None while there is none)."""
    if not basedir.is_dir():
        return None
    runs = [p for p in basedir.iterdir() if p.name.isdigit()]
    assert len(runs) <= 1, runs
    return runs[0] if runs else None


def file_steps(basedir: Path, metric: str = "train/loss") -> list[int]:
    """Steps of ``metric`` in the FileStorage run under ``basedir`` (empty while none)."""
    run = only_run_folder(basedir)
    try:
        return json.loads((run / "metrics.json").read_text())[metric]["steps"]
    except (TypeError, OSError, ValueError, KeyError):
        return []


def sql_steps(url: str, metric: str = "train/loss") -> list[int]:
    """Steps of ``metric`` in the one run of the SQL database at ``url`` (empty if none)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT step FROM metrics WHERE name = :n ORDER BY id"), {"n": metric}
            )
            return [step for (step,) in rows]
    except sa.exc.SQLAlchemyError:
        return []
    finally:
        engine.dispose()


def sql_run_row(url: str) -> dict:
    """status/heartbeat/info of the one run in the SQL database at ``url``."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            (row,) = conn.execute(sa.text("SELECT status, heartbeat, info, stop_time FROM run"))
            return {
                "status": row[0],
                "heartbeat": row[1],
                "info": json.loads(row[2] or "{}"),
                "stop_time": row[3],
            }
    finally:
        engine.dispose()
