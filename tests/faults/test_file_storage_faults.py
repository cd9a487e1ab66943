"""FileStorage's shared ``_sources`` store and a disk that is full before the run starts.

In-process on the TensorFlow-free fake backend (tests/tracking/fake_backend.py): fast.
"""

from __future__ import annotations

import argparse
import hashlib
import json

import pytest

from capreolus_opt.commands import train as cli
from tests.faults.fault_tools import can_mount_tmpfs, fill, tmpfs
from tests.tracking import fake_backend

NO_TMPFS = can_mount_tmpfs()


def _train(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return cli.handle_train(parser.parse_args(["train", *argv]), backend=fake_backend)


def _gin(path) -> str:
    path.write_text("train.steps = 4\n")
    return str(path)


def _sources_intact(runs) -> list:
    sources = sorted((runs / "_sources").iterdir())
    for source in sources:
        digest = source.stem.rsplit("_", 1)[1]
        assert hashlib.md5(source.read_bytes()).hexdigest() == digest, source
    return sources


def test_a_truncated_source_file_is_replaced_not_trusted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gin = _gin(tmp_path / "a.gin")
    assert _train([gin, "--observer", "file://runs"]) == 0
    sources = _sources_intact(tmp_path / "runs")
    assert sources
    for source in sources:
        source.write_bytes(b"")  # what a full disk left behind with Sacred's plain copyfile
    assert _train([gin, "--observer", "file://runs"]) == 0
    assert _sources_intact(tmp_path / "runs") == sources


@pytest.mark.slow
@pytest.mark.skipif(NO_TMPFS is not None, reason=str(NO_TMPFS))
def test_a_disk_full_before_the_start_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    gin = _gin(tmp_path / "a.gin")
    with tmpfs("1m") as disk:
        filler = fill(disk)
        code = _train([gin, "--observer", f"file://{disk}/runs", "--workdir", str(tmp_path / "w")])
        assert code == 2  # found by the observer's probe: one line, nothing recorded
        err = capsys.readouterr().err.strip()
        assert "cannot write 64 KiB into" in err and "No space left on device" in err
        assert "Traceback" not in err and len(err.splitlines()) == 1
        assert not [p for p in (disk / "runs").iterdir() if not p.name.startswith("_")]
        for path in (disk / "runs").rglob("*"):
            if path.is_file():
                assert path.stat().st_size > 0 and not path.name.endswith(".tmp"), path
                if path.suffix == ".json":
                    json.loads(path.read_text())
        filler.unlink()
        code = _train([gin, "--observer", f"file://{disk}/runs", "--workdir", str(tmp_path / "w2")])
        assert code == 0
        _sources_intact(disk / "runs")


@pytest.mark.slow  # mounts a tmpfs
@pytest.mark.skipif(NO_TMPFS is not None, reason=str(NO_TMPFS))
def test_a_disk_filling_between_the_probe_and_the_start_leaves_no_run_folder(
    tmp_path, monkeypatch, capsys
):
    from capreolus_opt.tracking.observers import OwnIdFileStorageObserver

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(OwnIdFileStorageObserver, "probe_bytes", 0)  # the probe passes
    gin = _gin(tmp_path / "a.gin")
    with tmpfs("1m") as disk:
        fill(disk)
        code = _train([gin, "--observer", f"file://{disk}/runs", "--workdir", str(tmp_path / "w")])
        err = capsys.readouterr().err
        assert code == 3 and "No space left on device" in err and "Traceback" not in err
        assert len([line for line in err.splitlines() if "error" in line]) == 1
        assert not [p for p in (disk / "runs").iterdir() if not p.name.startswith("_")]


def test_a_disk_that_fills_before_the_run_starts_is_exit_3_in_one_line_never_completed(
    tmp_path, monkeypatch, capsys
):
    import errno
    import sqlite3

    from capreolus_opt.tracking.observers import OwnIdFileStorageObserver

    monkeypatch.chdir(tmp_path)
    gin = _gin(tmp_path / "a.gin")
    original = OwnIdFileStorageObserver.save_json

    def full_at_the_start(self, obj, filename):  # the probe passed; then the disk filled
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(OwnIdFileStorageObserver, "save_json", full_at_the_start)
    argv = [gin, "--observer", "file://runs", "--observer", "sqlite:///runs.db"]
    assert _train(argv) == 3
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in err
    assert "FAILED: disk full: [Errno 28] cannot record the run's start in runs" in errors[0]
    assert "No space left on device" in errors[0]
    # The store that could be written says FAILED; the full one holds no run folder.
    assert sqlite3.connect(tmp_path / "runs.db").execute("SELECT status FROM run").fetchall() == [
        ("FAILED",)
    ]
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.isdigit()]
    monkeypatch.setattr(OwnIdFileStorageObserver, "save_json", original)
    assert _train(argv) == 0
