"""The `hub` extra installs one TensorFlow wheel, and the README's install line is what CI runs."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TF_WHEELS = ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos")


def _installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_at_most_one_tensorflow_wheel_is_installed():
    present = [name for name in TF_WHEELS if _installed(name)]
    assert len(present) == 1, f"expected one TensorFlow wheel, found {present}"


def test_hub_extra_cannot_pull_the_full_tensorflow_wheel():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower() for req in extras["hub"]}
    assert "tokenizers" in names
    # keras-hub requires tensorflow-text, and tensorflow-text requires `tensorflow`.
    assert not names & {"keras-hub", "keras_hub", "tensorflow-text", "tensorflow"}


def test_readme_install_line_is_the_one_ci_runs():
    readme = (ROOT / "README.md").read_text()
    (line,) = re.findall(
        r"^pip install -e '\.\[cpu,hub\]' && pip install --no-deps .*$", readme, re.M
    )
    ci = (ROOT / ".ci" / "run").read_text()
    assert line.replace("pip install", ".venv/bin/pip install -q") in ci
