"""A tiny Task (docs/ARCHITECTURE.md, Task protocol) for the training-loop tests: linear regression.

y = x @ w_true + 0.5 plus noise; the model is Dense(hidden, name="encoder") -> Dense(1,
name="head"), so the optimizer can put `encoder/` and `head/` in their own lr groups.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

DIM = 6
HIDDEN = 4


class RegressionTask:
    def __init__(
        self,
        *,
        num_eval: int = 37,
        nonfinite_batch: int | None = None,
        offset_rows: int = 0,
        offset: float = 300.0,
        loss_weight: float = 1.0,
    ) -> None:
        self.num_eval = num_eval
        # Global batch index (0-based) whose targets are +inf, to provoke a non-finite loss.
        self.nonfinite_batch = nonfinite_batch
        # The last `offset_rows` targets of every batch (the last replica's share) get +offset:
        # their float16 gradients overflow at loss scale 2**15 while the float32 loss is finite.
        self.offset_rows, self.offset = offset_rows, offset
        # Multiplies the loss: Adam's update does not depend on it (up to epsilon), but 1e-4
        # keeps float16 gradients at loss scale 2**15 below float16's max (65504).
        self.loss_weight = loss_weight
        rng = np.random.default_rng(1234)
        self.w_true = rng.normal(size=(DIM,)).astype(np.float32)

    def _examples(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, DIM)).astype(np.float32)
        y = (x @ self.w_true + 0.5 + 0.1 * rng.normal(size=n)).astype(np.float32)
        return x, y

    def build_model(self) -> keras.Model:
        return keras.Sequential(
            [
                keras.Input((DIM,)),
                keras.layers.Dense(HIDDEN, name="encoder"),
                keras.layers.Dense(1, name="head"),
            ],
            name="regressor",
        )

    def train_batches(self, global_batch_size: int, seed: int, count: int) -> list[dict]:
        """The first `count` global batches of train_dataset, in NumPy (for references)."""
        it = iter(self.train_dataset(global_batch_size, seed).take(count))
        return [{k: v.numpy() for k, v in b.items()} for b in it]

    def train_dataset(self, global_batch_size: int, seed: int) -> tf.data.Dataset:
        def batch(index: np.int64) -> tuple[np.ndarray, np.ndarray]:
            rng = np.random.default_rng([seed, int(index)])
            x, y = self._examples(rng, global_batch_size)
            if self.nonfinite_batch is not None and index == self.nonfinite_batch:
                y[:] = np.inf
            y[len(y) - self.offset_rows :] += self.offset
            return x, y

        def to_features(index: tf.Tensor) -> dict[str, tf.Tensor]:
            x, y = tf.numpy_function(batch, [index], [tf.float32, tf.float32])
            return {
                "x": tf.ensure_shape(x, [global_batch_size, DIM]),
                "y": tf.ensure_shape(y, [global_batch_size]),
            }

        return tf.data.Dataset.range(2**62).map(to_features)

    def eval_dataset(self, global_batch_size: int) -> tf.data.Dataset:
        x, y = self._examples(np.random.default_rng(99), self.num_eval)
        return tf.data.Dataset.from_tensor_slices({"x": x, "y": y}).batch(global_batch_size)

    def predict(self, model: keras.Model, x: tf.Tensor, training: bool) -> tf.Tensor:
        # float32 whatever the policy (mixed precision computes the layers in 16 bits).
        return tf.cast(model(x, training=training)[:, 0], tf.float32)

    def per_example_loss(self, model: keras.Model, features: dict, training: bool) -> tf.Tensor:
        error = self.predict(model, features["x"], training) - features["y"]
        return self.loss_weight * tf.square(error)

    def eval_outputs(self, model: keras.Model, features: dict) -> dict[str, tf.Tensor]:
        return {"pred": self.predict(model, features["x"], False), "y": features["y"]}

    def eval_metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        err = outputs["pred"].astype(np.float64) - outputs["y"]
        return {"mse": float(np.mean(err**2)), "count": float(err.size)}


# ------------------------------------------------------------------ references for the tests
def checkpoint_tensors(path: str) -> dict[str, np.ndarray]:
    """Every training tensor saved in a checkpoint, by key (model, optimizer, step)."""
    reader = tf.train.load_checkpoint(path)
    return {
        k: reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        # save_counter counts save() calls and AdamMultilr's layout (a JSON string naming each
        # optimizer variable) is checked on restore: bookkeeping, not training state.
        if not k.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter"))
        and not k.endswith("/.ATTRIBUTES/layout")
    }


def model_weights(task: RegressionTask, path: str) -> list[np.ndarray]:
    """[encoder kernel, encoder bias, head kernel, head bias] saved at `path`, float64."""
    model = task.build_model()
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    return [np.asarray(v.numpy(), np.float64) for v in model.trainable_variables]


def numpy_gradients(weights: list[np.ndarray], batch: dict) -> list[np.ndarray]:
    """Gradient of mean((x W1 + b1) W2 + b2 - y)^2 over the batch, by hand in float64."""
    w1, b1, w2, b2 = weights
    x, y = batch["x"].astype(np.float64), batch["y"].astype(np.float64)
    h = x @ w1 + b1
    dpred = 2.0 * ((h @ w2)[:, 0] + b2[0] - y) / len(y)
    dh = dpred[:, None] * w2[:, 0][None, :]
    return [x.T @ dh, dh.sum(0), h.T @ dpred[:, None], np.array([dpred.sum()])]


def l2(arrays: list[np.ndarray]) -> float:
    return float(np.sqrt(sum(np.sum(np.square(a)) for a in arrays)))
