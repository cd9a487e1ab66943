"""The folder layout of a training run's workdir: every name in it is spelt here, once.

::

    <base>/<run_uuid>/                 Workdir.for_run(base, run_uuid); base defaults to workdirs/
        checkpoint, ckpt-<step>.*      TensorFlow checkpoints (model, optimizer, step)
        .worker_tmp_<i>/               a non-chief worker's throw-away checkpoint copy
        .capreolus-owner.json          the run that owns the folder (tracking/workdir.py)
        .capreolus-owner.lock          held (flock) while a process trains in it
        evaluations/                   each evaluation's run files and metrics
        best/                          the best model by the dev metric
            best.json                  its step, metric, value (and interpolation weight)
            reranker.json              how rerank rebuilds it: the manifest
            model.keras | model.weights.npz   its weights, once (see below)
            vocab.txt                  a word-level encoder's vocabulary
        best.new/, best.old/           a new best being swapped in (training/selection.py)

The best model's weights are stored once: a model saved whole (``model.keras``, for a model
that cannot be rebuilt from ``reranker.json`` alone, e.g. a BERT cross- or dual-encoder; its
tokenizer travels inside), else ``model.weights.npz`` (every variable by path) beside a
manifest that rebuilds the model. Workdirs written before that hold both for a saved-whole
model; ``model.keras`` is what is read then.

Nothing here writes to the disk. Importing this module is cheap (the standard library and
``storage.paths`` only), so every layer can use it.
"""

from __future__ import annotations

import dataclasses
import os

from capreolus_opt.storage.paths import safe_join

#: Where a run's workdir goes when none is given: ``<cwd>/workdirs/<run_uuid>``.
DEFAULT_BASE = "workdirs"

#: TensorFlow's checkpoint state file and checkpoint prefix (``tf.train.CheckpointManager``).
CHECKPOINT_STATE = "checkpoint"
CHECKPOINT_PREFIX = "ckpt"
#: Where an unreadable checkpoint state file is moved aside.
CHECKPOINT_STATE_ASIDE = "checkpoint.unreadable"

OWNER_FILE = ".capreolus-owner.json"
LOCK_FILE = ".capreolus-owner.lock"

EVALUATIONS = "evaluations"
BEST = "best"
#: In a best-model folder (``best/``, or ``best.new/`` while it is written).
BEST_STATE = "best.json"
MANIFEST = "reranker.json"
MODEL_FILE = "model.keras"
WEIGHTS_FILE = "model.weights.npz"
VOCAB_FILE = "vocab.txt"


@dataclasses.dataclass(frozen=True)
class Workdir:
    """The paths of one workdir (``root``); see the module docstring."""

    root: str

    @classmethod
    def for_run(cls, base: str, run_uuid: str) -> Workdir:
        """``<base>/<run_uuid>`` (``base`` ``""``: :data:`DEFAULT_BASE`), refused
        (``UnsafePathError``) when ``run_uuid`` would name a folder outside ``base``."""
        return cls(safe_join(base or DEFAULT_BASE, run_uuid))

    @property
    def checkpoints(self) -> str:
        """The folder TensorFlow's checkpoints are written to (the workdir itself)."""
        return self.root

    @property
    def checkpoint_state(self) -> str:
        return os.path.join(self.root, CHECKPOINT_STATE)

    @property
    def checkpoint_state_aside(self) -> str:
        return os.path.join(self.root, CHECKPOINT_STATE_ASIDE)

    def worker_checkpoints(self, worker_id: int) -> str:
        """A non-chief worker's temporary checkpoint folder (removed after each save)."""
        return os.path.join(self.root, f".worker_tmp_{worker_id}")

    @property
    def owner_file(self) -> str:
        return os.path.join(self.root, OWNER_FILE)

    @property
    def lock_file(self) -> str:
        return os.path.join(self.root, LOCK_FILE)

    @property
    def evaluations(self) -> str:
        return os.path.join(self.root, EVALUATIONS)

    @property
    def best(self) -> str:
        return os.path.join(self.root, BEST)

    @property
    def best_new(self) -> str:
        return swap_folders(self.best)[0]

    @property
    def best_old(self) -> str:
        return swap_folders(self.best)[1]

    @property
    def best_state(self) -> str:
        """``best/best.json``."""
        return os.path.join(self.best, BEST_STATE)

    @property
    def best_manifest(self) -> str:
        """``best/reranker.json``."""
        return os.path.join(self.best, MANIFEST)

    @property
    def best_model(self) -> str:
        """``best/model.keras`` (a model saved whole)."""
        return os.path.join(self.best, MODEL_FILE)

    @property
    def best_weights(self) -> str:
        """``best/model.weights.npz`` (the weights of a model the manifest rebuilds)."""
        return os.path.join(self.best, WEIGHTS_FILE)

    @property
    def best_vocab(self) -> str:
        return os.path.join(self.best, VOCAB_FILE)

    def has_checkpoints(self) -> bool:
        """Whether the folder holds TensorFlow checkpoint files (or their state file)."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return False
        return any(n == CHECKPOINT_STATE or n.startswith(CHECKPOINT_PREFIX) for n in names)


def swap_folders(folder: str) -> tuple[str, str]:
    """``(folder.new, folder.old)``: where a replacement of ``folder`` is written whole, and
    where ``folder`` is moved aside while the replacement is renamed in."""
    return f"{folder}.new", f"{folder}.old"


def best_folder_weights(folder: str) -> str | None:
    """The file holding the weights in a best-model ``folder`` (``best/`` or ``best.new/``):
    ``model.keras`` when the model was saved whole, else ``model.weights.npz``; None when it
    holds neither."""
    for name in (MODEL_FILE, WEIGHTS_FILE):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None
