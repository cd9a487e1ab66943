"""The runs sub-commands register without importing heavy libraries (``--help`` stays fast)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cli_helpers import heavy_imports

pytestmark = pytest.mark.slow  # each test starts a fresh interpreter
HEAVY = ("tensorflow", "pandas", "matplotlib", "sqlalchemy", "pymongo", "keras", "gin", "sacred")


def test_registering_runs_commands_imports_nothing_heavy():
    code = (
        "import argparse\n"
        "from capreolus_opt.commands import runs as cli\n"
        "parser = argparse.ArgumentParser()\n"
        "cli.register(parser.add_subparsers())\n"
        "import capreolus_opt.records.load, capreolus_opt.analysis.compare\n"
    )
    assert heavy_imports(code, HEAVY) == []


def test_compare_help_lists_every_option():
    out = subprocess.run(
        [sys.executable, "-m", "capreolus_opt.cli", "compare", "--help"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    for option in ("--metric", "--where", "--status", "--sort", "--format", "SOURCE"):
        assert option in out.stdout
