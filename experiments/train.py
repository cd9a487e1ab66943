"""The capreolus_opt training experiment through Sacred's own command line.

    python experiments/train.py with 'gin_files=["gin_configs/quickstart.gin"]' -F runs
    python experiments/train.py with fast -F runs              # the smoke config
    python experiments/train.py print_config with 'gin_bindings=["train.num_steps = 4"]'

It is the same experiment as ``capreolus-opt train`` (same record: config with ``hparams``,
info, artifacts, metrics, result). Observers come only from the command line (Sacred's ``-F``,
``-s``, ``-m``). Prefer ``capreolus-opt train --observer URL`` for URLs with a password: Sacred
stores its own command-line options (URLs included) in the run's ``meta``.
"""

from __future__ import annotations

from capreolus_opt.cli import import_tensorflow_quietly
from capreolus_opt.tracking.experiment import make_experiment

ex = make_experiment()

if __name__ == "__main__":
    import_tensorflow_quietly()
    ex.run_commandline()
