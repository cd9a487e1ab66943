"""The README's commands and examples are part of the API: they run here as written.

- The first code block holds exactly two commands, the main job and the test command, and
  ``.ci/run`` runs that same test command (so CI proves what the README promises).
- Every ``$ capreolus-opt ...`` line of the ```console blocks runs, in order, in a scratch folder
  holding a copy of ``gin_configs/`` (``RUN_A``/``RUN_B`` become the first two recorded runs).
- Every ```python block runs in a fresh interpreter in that folder, after the commands.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from capreolus_opt import load_runs

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CLI = str(Path(sys.executable).parent / "capreolus-opt")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _commands(block: str) -> list[str]:
    return [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    first = _commands(_blocks("bash")[0])
    assert len(first) == 2, first
    main_job, test_cmd = first
    assert "capreolus-opt train gin_configs/quickstart.gin" in main_job
    assert "pytest" in test_cmd
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_cmd.strip() in ci, "'.ci/run' must run the README's test command verbatim"
    assert (ROOT / "gin_configs" / "quickstart.gin").is_file()


def test_readme_walkthrough_runs_as_written(tmp_path):
    shutil.copytree(ROOT / "gin_configs", tmp_path / "gin_configs")
    lines = [
        ln.removeprefix("$ ")
        for block in _blocks("console")
        for ln in _commands(block)
        if ln.startswith("$ capreolus-opt ")
    ]
    assert len(lines) >= 6, "the README walks through groups, train, compare, diff, plot, sweep"
    for line in lines:
        argv = shlex.split(line)
        if "RUN_A" in argv:
            uuids = [run.run_uuid for run in load_runs(str(tmp_path / "runs"))]
            argv = [{"RUN_A": uuids[0], "RUN_B": uuids[1]}.get(a, a) for a in argv]
        proc = subprocess.run(
            [CLI, *argv[1:]], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, f"README command failed: {line}\n{proc.stderr[-3000:]}"
        assert proc.stdout.strip(), f"README command printed nothing: {line}"
    assert (tmp_path / "curves.png").stat().st_size > 0

    for index, code in enumerate(_blocks("python")):
        script = tmp_path / f"readme_example_{index}.py"
        script.write_text(code)
        proc = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env=_env(),
        )
        failure = f"README example {index} failed:\n{code}\n{proc.stderr[-3000:]}"
        assert proc.returncode == 0, failure
        assert proc.stdout.strip(), f"README example {index} printed nothing"
