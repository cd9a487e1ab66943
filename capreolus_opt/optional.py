"""Optional dependencies: one import helper, so every missing extra is the same one-line hint.

Every import of a package that comes with an extra (``pyproject.toml``) goes through
:func:`require`; ``tests/test_optional.py`` checks that no module of the package imports one
directly. The CLI turns :class:`MissingExtraError` into exit 2 with its message.

    optuna = require("optuna", "tune")
    TrialState = require("optuna.trial", "tune").TrialState
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Top-level module -> the extra that installs it.
EXTRAS: dict[str, str] = {
    "submitit": "tune",
    "optuna": "tune",
    "mlflow": "mlflow",
    "tensorboard": "tensorboard",
    "keras_hub": "hub",
    "tokenizers": "hub",
    "safetensors": "hub",
    "bm25s": "trec",
    "ir_measures": "trec",
    "ir_datasets": "irds",
    "psycopg": "postgres",
    "pymongo": "mongo",
}

#: Extras that one ``pip install`` cannot complete (README "BERT rerankers": every keras-hub
#: release requires tensorflow-text, which would install the full tensorflow wheel beside
#: tensorflow-cpu).
_SECOND_COMMAND = {"hub": "pip install --no-deps 'keras-hub==0.32.0'"}


def install_command(extra: str) -> str:
    """The command that installs ``extra`` into an environment that has capreolus_opt."""
    command = f"pip install 'capreolus_opt[{extra}]'"
    second = _SECOND_COMMAND.get(extra)
    return f"{command} && {second}" if second else command


class MissingExtraError(ImportError):
    """An optional package is not installed; the message is one line naming it and the extra."""

    def __init__(self, module: str, extra: str, missing: str | None = None) -> None:
        self.module, self.extra = module, extra
        missing = missing or module
        super().__init__(
            f"{module} is not installed (no module named {missing!r}): {install_command(extra)}",
            name=missing,
        )


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` (a dotted name is fine), or raise :class:`MissingExtraError` naming
    ``extra``.

    ``extra`` must be the one :data:`EXTRAS` lists for the module's top-level package. An import
    that fails inside the package because one of its own requirements is missing is reported the
    same way: installing the extra brings that requirement too.
    """
    top = module.split(".", 1)[0]
    if EXTRAS.get(top) != extra:
        raise ValueError(
            f"require({module!r}, {extra!r}): {top!r} comes with extra {EXTRAS.get(top)!r}"
        )
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # The package itself, or one of its own requirements (which the extra installs too).
        inside = exc.name is None or exc.name.split(".", 1)[0] == top
        raise MissingExtraError(top, extra, top if inside else exc.name) from exc
