"""tests/search: helpers are in search_helpers.py (importable by the test modules)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
