"""``capreolus-opt train ARGS`` on the fake backend, as a separate process (concurrency tests)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: `tests.`

from capreolus_opt.cli import build_parser
from capreolus_opt.commands import train as cli
from tests.tracking import fake_backend

if __name__ == "__main__":
    args = build_parser().parse_args(["train", *sys.argv[1:]])
    sys.exit(cli.handle_train(args, backend=fake_backend))
