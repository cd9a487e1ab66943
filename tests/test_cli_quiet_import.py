"""``capreolus-opt train``/``groups`` import TensorFlow with its start-up notices filtered out
of stderr, and pass on everything else the import writes there, a failing import's traceback
included."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.cli_helpers import ROOT, SMOKE, run_cli

pytestmark = pytest.mark.slow  # every test starts the real command line

FAKE_TENSORFLOW = """
import os, sys
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written "
            b"to STDERR\\n")
os.write(2, b"I0000 00:00:1.0  1 port.cc:153] oneDNN custom operations are on. You may see...\\n")
os.write(2, b"E0000 cuda_dnn.cc:1] a real error from C++\\n")
print("a Python warning on stderr", file=sys.stderr)
if os.environ.get("FAKE_TF_FAILS"):
    raise ImportError("libtensorflow_framework.so.2: cannot open shared object file")
"""


def _import_with_fake_tensorflow(tmp_path, *, fails: bool) -> subprocess.CompletedProcess[str]:
    package = tmp_path / "tensorflow"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text(FAKE_TENSORFLOW)
    code = textwrap.dedent(
        """
        import sys
        from capreolus_opt.cli import import_tensorflow_quietly
        import_tensorflow_quietly()
        print("imported", sys.modules["tensorflow"].__file__)
        """
    )
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"}
    if fails:
        env["FAKE_TF_FAILS"] = "1"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )


def test_startup_notices_are_dropped_and_other_stderr_lines_kept_in_order(tmp_path):
    proc = _import_with_fake_tensorflow(tmp_path, fails=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"imported {tmp_path}")
    assert proc.stderr.splitlines() == [
        "E0000 cuda_dnn.cc:1] a real error from C++",
        "a Python warning on stderr",
    ]


def test_a_failing_import_keeps_its_output_and_traceback(tmp_path):
    proc = _import_with_fake_tensorflow(tmp_path, fails=True)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[:2] == ["E0000 cuda_dnn.cc:1] a real error from C++", "a Python warning on stderr"]
    assert "Traceback (most recent call last):" in lines
    assert lines[-1] == "ImportError: libtensorflow_framework.so.2: cannot open shared object file"
    assert not any("oneDNN" in line for line in lines)


def test_groups_through_the_cli_prints_no_tensorflow_startup_notice():
    proc = run_cli("groups", SMOKE)
    assert proc.returncode == 0, proc.stderr
    assert "oneDNN custom operations" not in proc.stderr
    assert "absl::InitializeLog" not in proc.stderr
    assert proc.stdout.startswith("variable ")
