"""keras_hub's ``BertBackbone`` computing the feed-forward activation its checkpoint names.

keras_hub builds every ``BertBackbone`` with the tanh approximation of GELU (what Google's
original BERT used), but a transformers ``config.json`` that says ``hidden_act: "gelu"`` means
the exact erf form, and its ``[CLS]`` state then differs by up to about 2e-3 on MiniLM
(docs/STACK_FACTS.md). ``BertEncoder`` is the same network with ``hidden_act`` in its config, so
a saved model reloads with the activation it was trained with.

Importing this module imports keras_hub (extra ``hub``); ``models.checkpoint`` imports it only
when a checkpoint is loaded. The class is registered as ``capreolus_opt>BertEncoder``; a
``.keras`` file that holds one also names this module, which Keras imports when it deserialises.
"""

from __future__ import annotations

import keras

from capreolus_opt.data.checkpoint_files import ACTIVATIONS
from capreolus_opt.optional import require

keras_hub = require("keras_hub", "hub")


_SQRT_HALF = 0.7071067811865476


def _gelu_exact(x):
    """The exact GELU as transformers computes it, ``0.5 x (1 + erf(x / sqrt 2))``.

    Not ``keras.activations.gelu(approximate=False)``: on TensorFlow that is ``tf.nn.gelu``'s
    ``erfc`` form, and Eigen's ``erfc`` is a scalar loop where ``erf`` is vectorised, so that
    form made the feed-forward activation a sizeable share of a CPU forward pass
    (docs/STACK_FACTS.md)."""
    x = keras.ops.convert_to_tensor(x)
    return 0.5 * x * (1.0 + keras.ops.erf(x * _SQRT_HALF))


def _gelu_tanh(x):
    return keras.activations.gelu(x, approximate=True)


@keras.saving.register_keras_serializable(package="capreolus_opt")
class BertEncoder(keras_hub.models.BertBackbone):
    """``BertBackbone(**kwargs)`` whose feed-forward layers apply ``hidden_act`` (a transformers
    name: ``"gelu"`` exact erf GELU; ``"gelu_new"`` / ``"gelu_pytorch_tanh"`` the tanh form)."""

    def __init__(self, *args, hidden_act: str = "gelu", **kwargs) -> None:
        if hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"hidden_act must be one of {sorted(ACTIVATIONS)}. Received: {hidden_act!r}"
            )
        super().__init__(*args, **kwargs)
        self.hidden_act = hidden_act
        activation = _gelu_tanh if ACTIVATIONS[hidden_act] else _gelu_exact
        for block in self.transformer_layers:
            # BertBackbone fixes the activation when it builds its layers; the functional graph
            # calls each Dense at run time, so replacing the Dense's activation takes effect.
            # keras_hub's own converter reaches these layers by the same names.
            dense = getattr(block, "_feedforward_intermediate_dense", None)
            if not isinstance(dense, keras.layers.Dense):
                raise RuntimeError(
                    f"keras_hub {keras_hub.__version__}: {block.name} has no feed-forward Dense "
                    "where keras-hub 0.32 keeps it; the activation cannot be set."
                )
            dense.activation = activation
            block.activation = activation

    def get_config(self) -> dict:
        return super().get_config() | {"hidden_act": self.hidden_act}
