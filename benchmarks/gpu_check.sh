#!/usr/bin/env bash
# The GPU evidence in one run, offline, in under 8 minutes (each step has its own time limit).
#
#   bash benchmarks/gpu_check.sh               # on a GPU machine, from anywhere
#   GPU_CHECK_SMALL=1 bash benchmarks/gpu_check.sh   # practice on a CPU: the same steps, small
#
# Needs only what a GPU workstation image has: python3 with numpy, CuPy for the local CUDA,
# numba-cuda (the custom kernels), rich, typer, threadpoolctl and pytest. gpupq is not installed:
# it runs from this checkout (PYTHONPATH, python3 -m gpupq). Wheels the machine lacks (faiss-cpu
# for the comparisons) are carried in the ignored folder .whl/ and installed into a private
# folder; fetch them where there is a network, for the GPU machine's Python (3.12):
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 -d .whl faiss-cpu==1.15.1
#
# Everything is written under $OUT (default ./gpu_check_out), at most 8 files:
#   env.txt        versions, the device, TF32 settings
#   log.txt        every step's output, with its wall time and exit status
#   agree.json     one estimate on every backend and faiss-cpu (recall, memory, timings)
#   bench.json     bench_backends: GPU vs numpy vs faiss-cpu, phase by phase
#   big.json       1M x 768, IVF4096,PQ96, nprobe 32, 10,000 queries, on the GPU alone
#   summary.txt    each step's status and seconds
# Judge by (issue 18): the scan at >= 40% of the memory bandwidth counted on code bytes, the
# ground truth at >= 50% of the fp32 product rate, the 1M x 768 estimate under 5 s, and every
# phase ahead of faiss-cpu on the same machine. Record the figures, device and date in
# benchmarks/RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$OUT"
LOG=$OUT/log.txt
SUMMARY=$OUT/summary.txt
: >"$LOG"
: >"$SUMMARY"
export PYTHONUNBUFFERED=1
# Exact ground truth needs full fp32 products: no TF32 anywhere.
unset CUPY_TF32
export NVIDIA_TF32_OVERRIDE=0
PY=${PYTHON:-python3}
SMALL=${GPU_CHECK_SMALL:-0}

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log it, note status and time
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s): $*" | tee -a "$LOG"
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
    local rc=$?
    local took=$((SECONDS - t0))
    echo "=== $name: exit $rc after ${took}s" | tee -a "$LOG"
    printf '%-12s exit %-4s %4ss\n' "$name" "$rc" "$took" >>"$SUMMARY"
}

# Carried wheels, into a private folder (nothing installed system-wide).
SITE=/tmp/gpupq_site
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
        >>"$LOG" 2>&1 || echo "wheel install failed (see log)" | tee -a "$LOG"
fi
export PYTHONPATH=$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}

# The numpy backend's compiled kernels, built in place for this machine's Python.
step build 60 $PY setup.py -q build_ext --inplace

{
    date -u +"%Y-%m-%d %H:%M UTC"
    uname -a
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>&1 || true
    echo "NVIDIA_TF32_OVERRIDE=${NVIDIA_TF32_OVERRIDE-unset} CUPY_TF32=${CUPY_TF32-unset}"
    $PY - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("numpy", "cupy", "numba", "numba_cuda", "faiss", "rich", "typer", "threadpoolctl", "pytest"):
    try:
        mod = importlib.import_module(name)
        print(name, getattr(mod, "__version__", "?"))
    except Exception as exc:  # noqa: BLE001
        print(name, "missing:", exc)
from gpupq.backends import usable_backends
for be in usable_backends():
    print("backend", be.name, "-", be.device_description())
EOF
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt" | tee -a "$LOG"

if [ "$SMALL" = 1 ]; then
    AGREE=(--n 20000 --d 64 --m 16 --nlist 128 --nprobe 8 --queries 200)
    BENCH=(--sizes 20000x128,20000x96 --nlist 128 --queries 200 --repeat 1 --pause 0)
    BIG=(--n 50000 --d 96 --m 12 --nlist 256 --nprobe 16 --queries 500 --backend numpy)
else
    AGREE=(--n 200000 --d 128 --m 16 --nlist 1024 --nprobe 16 --queries 2000)
    BENCH=(--sizes 100000x768,1000000x128 --nlist 1024 --queries 2000 --repeat 1 --pause 0)
    BIG=(--n 1010000 --d 768 --m 96 --nlist 4096 --nprobe 32 --queries 10000 --backend cupy)
fi

# 0. The kernels through the real compiler, types checked (seconds; needs no device).
step compile 60 $PY benchmarks/compile_kernels.py

# 1. The GPU cases of the test suite: every backend test on CuPy, every kernel compiled.
step pytest_gpu 110 $PY -m pytest -m gpu -q -x -p no:cacheprovider tests

# 2. Races in the kernels' shared memory (the simulator runs threads in turn and cannot see them).
if command -v compute-sanitizer >/dev/null; then
    step racecheck 45 compute-sanitizer --tool racecheck --print-limit 20 \
        $PY -m pytest -m gpu -q -x -p no:cacheprovider tests/test_gpukernels.py
else
    echo "racecheck: compute-sanitizer not found, skipped" | tee -a "$LOG" "$SUMMARY"
fi

# 3. Backend agreement: one estimate on every backend and faiss-cpu, the same data and split.
step agree 75 sh -c "$PY -m gpupq estimate --synthetic ${AGREE[*]} --backend all --verify faiss --json >'$OUT/agree.json'"

# 4. Phase by phase against faiss-cpu (and numpy), OpenBLAS told its core type so FAISS is not
#    run on a generic kernel (benchmarks/RESULTS.md: FAISS's recall is unchanged by it).
step bench 140 env OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-SkylakeX}" \
    $PY benchmarks/bench_backends.py "${BENCH[@]}" --json "$OUT/bench.json"

# 5. The large estimate, GPU only (numpy would take most of the budget for nothing measured).
step big 110 sh -c "$PY -m gpupq estimate --synthetic ${BIG[*]} --json >'$OUT/big.json'"

echo "--- summary" | tee -a "$LOG"
tee -a "$LOG" <"$SUMMARY"
