"""A model's weights as one ``.npz`` file keyed by variable path, restored with every check.

``tf.train.Checkpoint(model=model).restore`` on a training checkpoint restores only the
variables it reaches through ``model`` first (10 of 42 tensors for the reranker: the rest are
stored under ``optimizer/_trainable_variables/``) and says nothing about the others. Here every
variable is saved under its Keras ``path``; ``restore_weights`` requires the same set of paths,
the same shapes and dtypes, and assigns all of them, or raises naming the differences. A leading
``<model name>/`` (Sequential models add it, and auto-named models differ within a process) is
left out of the keys.

``restore_weights`` also reads the weights of a model saved whole (``model.keras``, how a best
model that its manifest cannot rebuild is stored), so that one copy of the weights serves both
``rerank`` and the end-of-run test scoring. Keras matches those by the structure of the layers
and refuses a variable missing from the file or shaped differently.
"""

from __future__ import annotations

import os
import zipfile

import keras
import numpy as np


def _key(model: keras.Model, variable: keras.Variable) -> str:
    return variable.path.removeprefix(f"{model.name}/")


def save_weights(model: keras.Model, path: str) -> str:
    """Writes every variable of ``model`` (trainable or not) to ``path`` (atomically)."""
    values = {
        _key(model, v): np.asarray(keras.ops.convert_to_numpy(v.value)) for v in model.variables
    }
    if len(values) != len(model.variables):
        raise ValueError(f"{model.name} has variables with the same path; cannot save by path")
    tmp = f"{path}.tmp{os.getpid()}.npz"
    np.savez(tmp, **values)
    os.replace(tmp, path)
    return path


def _stored(path: str) -> dict[str, np.ndarray]:
    """``{key: value}`` of every variable in a ``save_weights`` file."""
    # Opened here, not by np.load: on a corrupt archive np.load leaves its own handle open.
    try:
        with open(path, "rb") as handle, np.load(handle) as stored:
            return {name: stored[name] for name in stored.files}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is unreadable (expected saved weights, .npz): {err}") from None


def _restore_from_model_file(model: keras.Model, path: str) -> int:
    """Keras's own loading of a ``.keras`` file's weights into ``model``: matched by the
    structure of layers, not by variable path, since auto-named objects (a dropout's seed
    generator) get other names in the process that built the model than in the file."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is unreadable (expected a saved Keras model, .keras)")
    try:
        model.load_weights(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} does not match model {model.name!r}: {_one_line(err)}") from None
    return len(model.variables)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 500 else f"{text[:500]}..."


def restore_weights(model: keras.Model, path: str) -> int:
    """Assigns every variable of ``model`` from ``path`` (a ``save_weights`` file, or a
    ``.keras`` model of the same architecture); returns how many were restored.

    Raises:
        ValueError: a variable is missing from the file or the file has one the model does not,
            or a shape/dtype differs (the message lists them).
    """
    if path.endswith(".keras"):
        return _restore_from_model_file(model, path)
    saved = _stored(path)
    own = {_key(model, v): v for v in model.variables}
    problems = [f"missing in file: {p}" for p in sorted(own.keys() - saved.keys())]
    problems += [f"not in model: {p}" for p in sorted(saved.keys() - own.keys())]
    for name in sorted(own.keys() & saved.keys()):
        var, value = own[name], saved[name]
        if tuple(var.shape) != value.shape or np.dtype(var.dtype) != value.dtype:
            problems.append(
                f"{name}: model {tuple(var.shape)} {var.dtype}, file {value.shape} {value.dtype}"
            )
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; ... {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise ValueError(f"{path} does not match model {model.name!r}: {shown}")
    for name, var in own.items():
        var.assign(saved[name])
    return len(own)
