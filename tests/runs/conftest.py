"""Fixtures for tests/runs: see run_fixtures.py (helpers importable by the test modules)."""

from tests.runs.run_fixtures import mongo_client, observers  # noqa: F401  (pytest fixtures)
