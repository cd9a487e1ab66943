"""Fixtures for tests/tracking; the helpers the test modules import are in tracking_helpers.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty temporary folder (the CLI defaults to ./runs and ./workdirs)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
