"""A planted PostgreSQL password never appears in any output, record or command line.

A real PostgreSQL login role with a password (TCP on 127.0.0.1 asks for it), real trainings and
sweeps through the real CLI, then every printed line, every file of the FileStorage record, every
row of the SQL record and every process's argv during a sweep is searched for the password, in
both URL forms (``user:PASSWORD@host`` and ``?password=PASSWORD``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli_helpers import ROOT, SMOKE, run_cli

ADMIN_URL = os.environ.get("CAPREOLUS_TEST_POSTGRES_URL", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not ADMIN_URL, reason="CAPREOLUS_TEST_POSTGRES_URL is not set (CI sets it)"),
]
PASSWORD = "Pw" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def secret_db():
    """A login role with PASSWORD owning a fresh database; yields (role, database)."""
    suffix = uuid.uuid4().hex[:8]
    role, database = f"capreolus_secret_{suffix}", f"capreolus_secret_{suffix}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'"))
        conn.execute(sa.text(f"CREATE DATABASE {database} OWNER {role}"))
    yield role, database
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
    admin.dispose()


def _urls(role: str, database: str) -> dict[str, str]:
    return {
        "userinfo": f"postgresql://{role}:{PASSWORD}@127.0.0.1:5432/{database}",
        "query": f"postgresql://{role}@127.0.0.1:5432/{database}?password={PASSWORD}",
    }


def _assert_clean(proc: subprocess.CompletedProcess, *, code: int | None = 0) -> str:
    text = proc.stdout + proc.stderr
    assert PASSWORD not in text, text
    if code is not None:
        assert proc.returncode == code, text
    return text


def _files_text(folder: Path) -> str:
    return "".join(
        path.read_bytes().decode("utf-8", errors="replace")
        for path in folder.rglob("*")
        if path.is_file()
    )


def _database_text(url: str) -> str:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    chunks = []
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                chunks.append(repr(tuple(row)))
    engine.dispose()
    return "\n".join(chunks)


@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_training_with_a_password_url_leaks_it_nowhere(tmp_path, secret_db, form):
    url = _urls(*secret_db)[form]
    fs = tmp_path / "fs"
    proc = run_cli("train", SMOKE, "--observer", url, "--observer", f"file://{fs}", cwd=tmp_path)
    assert "COMPLETED" in _assert_clean(proc)
    assert PASSWORD not in _files_text(fs)
    assert PASSWORD not in _database_text(_urls(*secret_db)["userinfo"])

    for argv in (
        ["compare", str(fs), url],
        ["compare", url, "--format", "json"],
        ["plot", url, "--metric", "train/loss", "-o", str(tmp_path / "curves.png")],
    ):
        _assert_clean(run_cli(*argv, cwd=tmp_path))


def test_errors_about_password_urls_are_masked(tmp_path, secret_db):
    role, database = secret_db
    wrong = f"postgresql://{role}:{PASSWORD}x@127.0.0.1:5432/{database}"
    text = _assert_clean(run_cli("train", SMOKE, "--observer", wrong, cwd=tmp_path), code=2)
    assert f"postgresql://{role}:***@127.0.0.1:5432/{database}" in text
    missing = f"postgresql://{role}:{PASSWORD}@127.0.0.1:5432/{database}_missing"
    text = _assert_clean(run_cli("compare", missing, cwd=tmp_path), code=1)
    assert "***" in text
    diff = run_cli("diff", "--source", missing, "aaaa", "bbbb", cwd=tmp_path)
    assert diff.returncode != 0 and "***" in _assert_clean(diff, code=None)


def test_sweep_keeps_password_urls_off_every_command_line(tmp_path, secret_db):
    url = _urls(*secret_db)["userinfo"]
    grid = ["--grid", "AdamMultilr.learning_rate=[3e-3]"]
    dry = run_cli("sweep", SMOKE, *grid, "--observer", url, "--dry-run", cwd=tmp_path)
    assert "postgresql://" in _assert_clean(dry)

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    argv = [sys.executable, "-m", "capreolus_opt.cli", "sweep", SMOKE, *grid]
    proc = subprocess.Popen(
        [*argv, "--observer", url, "--workdir_root", str(tmp_path / "wd")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    own = proc.pid
    leaked = []
    while proc.poll() is None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == own:
                continue  # the sweep's own argv is the test's choice; its children are ours
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if PASSWORD in cmdline and "capreolus_opt.cli" in cmdline:
                leaked.append(cmdline.replace("\0", " "))
        time.sleep(0.05)
    output = proc.stdout.read()
    proc.stdout.close()
    assert proc.returncode == 0, output
    assert PASSWORD not in output
    assert not leaked, leaked
    assert "1 of 1 points succeeded" in output
