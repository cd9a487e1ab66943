"""A tiny stand-in for capreolus_opt.config's functions (no TensorFlow), for fast tracking tests.

Config files hold ``name = value`` lines (JSON values). Training: ``train.steps`` steps; the loss at
step ``s`` is ``1 / s``; a checkpoint (``ckpt.json``: last step) is written every
``train.ckpt_every`` steps and on interrupt; ``train.fail_at`` raises at that step;
``train.interrupt_at`` behaves like SIGINT at that step (checkpoint, flush, KeyboardInterrupt).
"""

from __future__ import annotations

import json
import os
import signal
import types

_CONFIG: dict[str, object] = {}
_USED: set[str] = set()
DEFAULTS = {
    "train.steps": 6,
    "train.ckpt_every": 2,
    "train.fail_at": 0,
    "train.interrupt_at": 0,
    "train.seed": 0,
    "train.sleep": 0.0,
}


#: What ``train --resume`` may change here (the fault-injection knobs and the step count).
RESUME_MAY_CHANGE = ("train.steps", "train.interrupt_at", "train.fail_at", "train.sleep")
STEPS_PARAM = "train.steps"


class FakeTable:
    def to_records(self):
        return [
            {"variable": "head/kernel", "group": "head", "params": 4, "lr": 1e-3},
            {"variable": "enc/kernel", "group": "default", "params": 8, "lr": 2e-5},
        ]

    def to_csv(self):
        return "variable,group,params,lr\nhead/kernel,head,4,0.001\nenc/kernel,default,8,2e-05\n"


def metrics_at(step: int) -> dict[str, float]:
    """The metrics the fake loop logs at ``step`` (shared with the tests' expectations)."""
    return {"train/loss": 1.0 / step, "group/head/lr": 1e-3, "group/default/lr": 2e-5 * step}


def parse_config(gin_files, gin_bindings):
    _CONFIG.clear()
    _USED.clear()
    lines = []
    for path in gin_files:
        if not os.path.isfile(path):
            raise ValueError(f"gin file {path!r} does not exist")
        with open(path) as f:
            lines += [ln for ln in f.read().splitlines() if ln.strip()]
    for line in [*lines, *gin_bindings]:
        name, sep, value = line.partition("=")
        if not sep or name.strip() not in DEFAULTS:
            raise ValueError(f"could not parse gin binding {line!r}")
        _CONFIG[name.strip()] = json.loads(value)


def flat_hyperparameters():
    return sorted({**DEFAULTS, **_CONFIG}.items())


def config_text():
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in sorted(_CONFIG.items()))


def operative_config_text():
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in sorted(_CONFIG.items()) if k in _USED)


def _get(name):
    _USED.add(name)
    return _CONFIG.get(name, DEFAULTS[name])


def run_training(*, workdir, sink=None, on_start=None):
    import time

    os.makedirs(workdir, exist_ok=True)
    ckpt = os.path.join(workdir, "ckpt.json")
    start = 0
    if os.path.exists(ckpt):
        with open(ckpt) as f:
            start = json.load(f)["step"]

    def save(step):
        with open(ckpt, "w") as f:
            json.dump({"step": step}, f)

    stop = []
    previous = signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        if on_start:
            on_start(
                {
                    "group_table": FakeTable(),
                    "strategy_summary": {"kind": "fake"},
                    "start_step": start,
                }
            )
        steps = _get("train.steps")
        for step in range(start + 1, steps + 1):
            if step == _get("train.fail_at"):
                raise RuntimeError(f"boom at step {step}")
            if sink:
                sink.log_metrics(step, metrics_at(step))
            if step % _get("train.ckpt_every") == 0:
                save(step)
            time.sleep(_get("train.sleep"))
            if step == _get("train.interrupt_at") or stop:
                save(step)
                if sink:
                    sink.flush()
                raise KeyboardInterrupt
        save(steps)
        return types.SimpleNamespace(
            final_step=steps,
            eval_metrics={"mrr@10": 0.5 + steps / 100},
            checkpoint_path=ckpt,
            group_table=FakeTable(),
            strategy_summary={"kind": "fake"},
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
