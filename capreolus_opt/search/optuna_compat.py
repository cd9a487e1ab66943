"""Every private Optuna name capreolus_opt uses, behind one function (Optuna 5.0 and 5.1).

A search worker fails the trials of workers that died (no heartbeat): another process's RUNNING
trial. Optuna's public API changes only the caller's own trials (``Study.tell`` with a trial it
asked for); its own ``fail_stale_trials`` goes through the study's storage with the trial's
storage id, both private (``Study._storage``, ``FrozenTrial._trial_id``). :func:`fail_trial`
does the same; ``set_trial_user_attr`` and ``set_trial_state_values`` are the storage classes'
public methods. Outside this module no code of the package reads an Optuna private name
(``tests/search/test_optuna_compat.py`` scans it), so an Optuna upgrade breaks here first.

Importing this module checks ``optuna.__version__`` against :data:`TESTED` (another major
version raises ImportError, another 5.x minor release warns once) and that the private names
still exist (ImportError naming the missing one).
"""

from __future__ import annotations

from typing import Any

from capreolus_opt.framework_versions import check_version
from capreolus_opt.optional import require

optuna = require("optuna", "tune")

#: (major, minor) releases these names were checked on (pyproject pins optuna to 5.x).
TESTED: tuple[tuple[int, int], ...] = ((5, 0), (5, 1))

#: Private attributes read here: ``Study._storage`` and ``FrozenTrial._trial_id``, both set in
#: their class's ``__init__``.
PRIVATE_NAMES: dict[str, tuple[Any, str]] = {
    "Study._storage": (optuna.study.Study, "_storage"),
    "FrozenTrial._trial_id": (optuna.trial.FrozenTrial, "_trial_id"),
}


def missing_private_names() -> list[str]:
    """The names of :data:`PRIVATE_NAMES` the installed Optuna's constructors no longer set."""
    return [
        label for label, (cls, attr) in PRIVATE_NAMES.items()
        if attr not in cls.__init__.__code__.co_names
    ]  # fmt: skip


def _check() -> None:
    check_version("Optuna", optuna.__version__, TESTED)
    missing = missing_private_names()
    if missing:
        raise ImportError(
            f"optuna {optuna.__version__} lacks {', '.join(missing)}, which capreolus_opt uses "
            f"to fail a dead worker's trial (tested with Optuna 5.0 and 5.1)"
        )


_check()


def fail_trial(study: Any, trial: Any, reason: str) -> bool:
    """Mark ``trial`` (a :class:`FrozenTrial` of ``study``, RUNNING in another process) FAIL,
    with user attribute ``stopped_reason = reason``.

    Returns:
        True when this call changed its state; False when it had already finished (another
        worker failed it first, or it completed meanwhile).
    """
    UpdateFinishedTrialError = optuna.exceptions.UpdateFinishedTrialError
    storage, trial_id = study._storage, trial._trial_id
    try:
        storage.set_trial_user_attr(trial_id, "stopped_reason", reason)
        return bool(storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL))
    except UpdateFinishedTrialError:
        return False
