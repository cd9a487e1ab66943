"""The capreolus_opt training experiment through Sacred's command-line syntax.

    python experiments/train.py with 'gin_files=["gin_configs/quickstart.gin"]' -F runs
    python experiments/train.py with fast -F runs              # the smoke config
    python experiments/train.py print_config with 'gin_bindings=["train.num_steps = 4"]'

A run (``with ...``, no command) goes through the same call as ``capreolus-opt train``
(:func:`capreolus_opt.tracking.run.run_tracked`: input checks before anything is recorded,
workdir ownership, the same record and exit codes). Config keys: ``gin_files``, ``gin_bindings``,
``workdir``, ``seed``; the named config ``fast`` is the smoke config. Observers: ``-F DIR``
(``--file_storage=DIR``), ``-s URL`` (``--sql=URL``), ``-m URL`` (``--mongo_db=URL`` or Sacred's
``[host:port:]db``), repeatable; none given: as ``train`` (``$CAPREOLUS_OPT_OBSERVERS``, else
``file://runs``). Any other Sacred command (``print_config``, ``help``...) is Sacred's own.
Prefer ``capreolus-opt train --observer URL`` for URLs with a password.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from capreolus_opt.tracking.experiment import SMOKE_GIN, make_experiment
from capreolus_opt.tracking.quiet_import import import_tensorflow_quietly

ex = make_experiment()

_OBSERVER_FLAGS = {"-F": "file", "--file_storage": "file", "-s": "sql", "--sql": "sql",
                   "-m": "mongo", "--mongo_db": "mongo"}  # fmt: skip


def _observer_url(kind: str, value: str) -> str:
    if kind == "file":
        return value if "://" in value else f"file://{value}"
    if kind == "mongo" and "://" not in value:
        parts = value.split(":")  # Sacred's [host:port:]db_name
        host, port, db = parts if len(parts) == 3 else ("localhost", "27017", parts[-1])
        return f"mongodb://{host}:{port}/{db}"
    return value


def request_from_argv(argv: Sequence[str]):
    """The :class:`RunRequest` of ``[with UPDATE ...] [observer flags]``.

    Raises:
        ValueError: an unknown option or config key, or a flag without its value.
    """
    from sacred.arg_parser import get_config_updates

    from capreolus_opt.tracking.run import RunRequest

    updates, observers, args = [], [], list(argv)
    while args:
        arg = args.pop(0)
        flag, sep, value = arg.partition("=")
        if flag in _OBSERVER_FLAGS:
            if not sep:
                if not args:
                    raise ValueError(f"{flag} needs a value")
                value = args.pop(0)
            observers.append(_observer_url(_OBSERVER_FLAGS[flag], value))
        elif arg.startswith("-"):
            raise ValueError(f"unsupported option {arg!r} (expected -F, -s or -m)")
        elif arg != "with":
            updates.append(arg)
    config, named = get_config_updates(updates)
    unknown = set(config) - {"gin_files", "gin_bindings", "workdir", "seed"}
    unknown |= set(named) - {"fast"}
    if unknown:
        raise ValueError(f"unknown config {sorted(unknown)}; expected gin_files, gin_bindings, "
                         "workdir, seed or the named config fast")  # fmt: skip
    gin_files = list(config.get("gin_files", [SMOKE_GIN] if "fast" in named else []))
    return RunRequest(
        gin_files=gin_files,
        gin_bindings=list(config.get("gin_bindings", [])),
        workdir=str(config.get("workdir", "")),
        seed=config.get("seed"),
        observers=observers,
    )


def main(argv: Sequence[str]) -> int:
    from capreolus_opt.commands.train import print_outcome
    from capreolus_opt.records import exit_codes
    from capreolus_opt.tracking.run import RunInputError, run_tracked

    try:
        request = request_from_argv(argv)
    except ValueError as exc:
        print(f"experiments/train.py: error: {exc}", file=sys.stderr)
        return exit_codes.INPUT
    import_tensorflow_quietly()
    try:
        outcome = run_tracked(request)
    except RunInputError as exc:
        print(f"experiments/train.py: error: {exc}", file=sys.stderr)
        return exit_codes.INPUT
    print_outcome(outcome)
    return outcome.exit_code


if __name__ == "__main__":
    first = sys.argv[1] if len(sys.argv) > 1 else "with"
    if first == "with" or first.startswith("-"):
        sys.exit(main(sys.argv[1:]))
    import_tensorflow_quietly()
    ex.run_commandline()
