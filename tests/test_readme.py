"""The README's commands and examples are part of the API: they run here as written.

- The first code block holds exactly two commands, the main job and the full test command, and
  ``.ci/run`` runs that same test command (so CI proves what the README promises).
- The ```console blocks' ``$ capreolus-opt ...`` lines run in order, in a scratch folder holding a
  copy of ``gin_configs/``, one chain of blocks per test (so xdist spreads them): a block that
  starts with a command making runs or reading configs (``groups``, ``train``, ``sweep``,
  ``tune``) opens a chain, any other block (``export``, say) continues the chain before it.
  ``RUN_A``/``RUN_B`` become the chain's first two recorded runs.
- Every ```python block after the first console block runs in a fresh interpreter in the folder
  of the chain before it, after that chain's commands (it may read what they recorded). The
  blocks before any command need nothing but the package: they run in-process (the fast tier).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from capreolus_opt import load_runs

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CLI = str(Path(sys.executable).parent / "capreolus-opt")
OPENS_A_CHAIN = ("groups", "train", "sweep", "tune")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _commands(block: str) -> list[str]:
    return [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def _chains() -> tuple[list[str], list[dict[str, list[str]]]]:
    """(python blocks before any command, chains of {"commands", "python"} in README order)."""
    standalone: list[str] = []
    chains: list[dict[str, list[str]]] = []
    for match in re.finditer(r"```(console|python)\n(.*?)```", README, flags=re.S):
        lang, body = match.groups()
        if lang == "python":
            (chains[-1]["python"] if chains else standalone).append(body)
            continue
        lines = [
            ln.removeprefix("$ ") for ln in _commands(body) if ln.startswith("$ capreolus-opt ")
        ]
        if not lines:
            continue
        if shlex.split(lines[0])[1] in OPENS_A_CHAIN or not chains:
            chains.append({"commands": [], "python": []})
        chains[-1]["commands"].extend(lines)
    return standalone, chains


STANDALONE, CHAINS = _chains()


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    first = _commands(_blocks("bash")[0])
    assert len(first) == 2, first
    main_job, test_cmd = first
    assert "capreolus-opt train gin_configs/quickstart.gin" in main_job
    assert "pytest" in test_cmd and '-m "slow or not slow"' in test_cmd, "the full suite"
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_cmd.strip() in ci, "'.ci/run' must run the README's test command verbatim"
    assert (ROOT / "gin_configs" / "quickstart.gin").is_file()


def test_readme_walks_through_groups_train_compare_diff_plot_sweep():
    verbs = {shlex.split(line)[1] for chain in CHAINS for line in chain["commands"]}
    assert {"groups", "train", "compare", "diff", "plot", "sweep"} <= verbs, verbs
    assert STANDALONE, "the README opens with in-process Python examples"


@pytest.mark.parametrize("index", range(len(STANDALONE)))
def test_readme_python_example_before_the_commands(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(STANDALONE[index], f"README python example {index}", "exec"), {})
    assert out.getvalue().strip(), f"README example {index} printed nothing"


@pytest.mark.slow
@pytest.mark.parametrize(
    "chain", CHAINS, ids=[shlex.split(c["commands"][0])[1] + str(i) for i, c in enumerate(CHAINS)]
)
def test_readme_commands_run_as_written(chain, tmp_path):
    shutil.copytree(ROOT / "gin_configs", tmp_path / "gin_configs")
    for line in chain["commands"]:
        argv = shlex.split(line)
        if "RUN_A" in argv:
            uuids = [run.run_uuid for run in load_runs(str(tmp_path / "runs"))]
            argv = [{"RUN_A": uuids[0], "RUN_B": uuids[1]}.get(a, a) for a in argv]
        proc = subprocess.run(
            [CLI, *argv[1:]], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, f"README command failed: {line}\n{proc.stderr[-3000:]}"
        assert proc.stdout.strip(), f"README command printed nothing: {line}"
    for name in re.findall(r"-o (\S+\.png)", " ".join(chain["commands"])):
        assert (tmp_path / name).stat().st_size > 0

    for index, code in enumerate(chain["python"]):
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
