#!/usr/bin/env bash
# One prepared check of a GPU machine, under 8 minutes on one GPU (each stage has a time limit):
#   1. the tests that train on the default device, on CUDA (SEMISTYLEGAN_TEST_DEVICE=cuda; the
#      cpu_only tests, which compare CPU results bit for bit, are skipped);
#   2. img/s at 64x64 and 128x128 of the full Semi-StyleGAN step against the plain GAN step
#      (bench/step_speed.py; at 64x64 also the full step with --compile);
#   3. about 3 minutes (160 s of steps) of `semistylegan train --preset dsprites64 --bf16`, its
#      kimg from stage 2's img/s;
#   4. `semistylegan evaluate` on that run.
# Results go to the folder given as $1 (default $OUT, else ./gpu_check_out): one log per stage,
# step_speed.jsonl, the run directory, metrics.json and summary.txt. A failing stage is
# recorded in summary.txt and the next stage still runs; the exit status is 1 if any failed.
#
#   bench/gpu_check.sh /path/to/results
#   bench/gpu_check.sh --dry-run [folder]   (or DRY_RUN=1): every stage tiny, on the CPU, in seconds
#
# PYTHON picks the interpreter (default python3); the package is imported from this checkout.
set -uo pipefail

DRY_RUN=${DRY_RUN:-0}
if [ "${1:-}" = "--dry-run" ]; then
  DRY_RUN=1
  shift
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=${1:-${OUT:-./gpu_check_out}}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
PY=${PYTHON:-python3}
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export SEMISTYLEGAN_CACHE=${SEMISTYLEGAN_CACHE:-$RESULTS/cache}  # the readers evaluate trains
cd "$REPO"

if [ "$DRY_RUN" = 1 ]; then
  # Every stage as below, tiny and on the CPU: checks the script, not the machine.
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  TESTS=(tests/train/test_pipeline.py -k "mixed_precision or prefetching or accelerator")
  BENCH_COMMON=(--preset tiny --device cpu --warmup 1 --steps 1 --rounds 1)
  BENCH_64=(--variants full,plain)
  BENCH_128=(--resolution 32 --batch 8 --variants full,plain)
  TRAIN=(--preset tiny --device cpu --metrics-samples 100)
  TRAIN_SECONDS=5
  EVAL=(--device cpu --samples 100 --oracle-steps 5 --render-samples 16 --skip dci,beta_vae,factor_vae)
  T_TESTS=60 T_BENCH64=60 T_BENCH128=60 T_TRAIN=60 T_EVAL=60
else
  TESTS=(tests/train tests/nets/test_nets.py)
  BENCH_COMMON=(--preset dsprites64 --device cuda --bf16 --warmup 5 --steps 10 --rounds 3)
  BENCH_64=(--variants full,plain,full+compile)
  BENCH_128=(--resolution 128 --variants full,plain)
  TRAIN=(--preset dsprites64 --device cuda --bf16)
  TRAIN_SECONDS=160
  EVAL=(--device cuda)
  T_TESTS=50 T_BENCH64=100 T_BENCH128=45 T_TRAIN=185 T_EVAL=130
fi

START=$(date +%s)
STATUS=0
: > "$RESULTS/summary.txt"
note() { echo "$*" | tee -a "$RESULTS/summary.txt"; }
stage() {  # stage NAME SECONDS command...: run with a time limit, log to NAME.log, note the outcome
  local name=$1 limit=$2 t0 rc
  shift 2
  t0=$(date +%s)
  echo "== $name (limit ${limit} s): $*" | tee "$RESULTS/$name.log"
  timeout -s INT -k 10 "$limit" "$@" >> "$RESULTS/$name.log" 2>&1
  rc=$?
  note "$name: exit $rc in $(( $(date +%s) - t0 )) s$([ $rc = 124 ] && echo ' (time limit)')"
  [ $rc -ne 0 ] && STATUS=1
  return $rc
}

note "gpu_check $( [ "$DRY_RUN" = 1 ] && echo '(dry run, CPU) ')$(date -u +%FT%TZ) commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)"
"$PY" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(),
      '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU',
      '| bf16', torch.cuda.is_available() and torch.cuda.is_bf16_supported())" 2>&1 | tee -a "$RESULTS/summary.txt"
if [ "$DRY_RUN" != 1 ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  note "no CUDA device: run with --dry-run on a CPU"
  exit 2
fi
command -v nvidia-smi > /dev/null && nvidia-smi > "$RESULTS/nvidia-smi.txt" 2>&1

# 1. tests on the GPU ------------------------------------------------------------------------
# (also in the dry run: the GPU mode's selection, on the CPU)
SEMISTYLEGAN_TEST_DEVICE=cuda stage tests "$T_TESTS" "$PY" -m pytest -q -m "not slow" -p no:cacheprovider \
  --junitxml="$RESULTS/tests.xml" "${TESTS[@]}"
tail -n 3 "$RESULTS/tests.log" | sed 's/^/  /' | tee -a "$RESULTS/summary.txt"

# 2. step speed ------------------------------------------------------------------------------
rm -f "$RESULTS/step_speed.jsonl"
stage speed64 "$T_BENCH64" "$PY" bench/step_speed.py "${BENCH_COMMON[@]}" "${BENCH_64[@]}" \
  --json "$RESULTS/step_speed.jsonl"
stage speed128 "$T_BENCH128" "$PY" bench/step_speed.py "${BENCH_COMMON[@]}" "${BENCH_128[@]}" \
  --json "$RESULTS/step_speed.jsonl"
grep -h -E "img/s|/ full" "$RESULTS/speed64.log" "$RESULTS/speed128.log" | sed 's/^/  /' | tee -a "$RESULTS/summary.txt"

# 3. a training run of about TRAIN_SECONDS ---------------------------------------------------
# kimg from the full step's measured img/s at the preset's resolution (less a tenth for the
# start-up and the end-of-run grid, metrics and snapshot); 20 kimg when stage 2 has no figure.
KIMG=$("$PY" - "$RESULTS/step_speed.jsonl" "$TRAIN_SECONDS" "$DRY_RUN" <<'EOF'
import json, sys
path, seconds, dry = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
try:
    rows = [json.loads(line) for line in open(path)]
    rate = min(r["img_per_s"] for r in rows if r["variant"] == "full" and r["resolution"] == rows[0]["resolution"])
except (OSError, ValueError, KeyError):
    rate = None
if dry:
    print(0.032)
elif rate is None:
    print(20.0)
else:
    print(round(max(rate * seconds * 0.9 / 1000, 1.0), 1))
EOF
)
RUN="$RESULTS/run"
rm -rf "$RUN"
stage train "$T_TRAIN" "$PY" -m semistylegan train "${TRAIN[@]}" --kimg "$KIMG" --no-progress --out "$RUN" \
  --snapshot-kimg "$("$PY" -c "print(max($KIMG / 4, 0.016))")" --grid-kimg "$("$PY" -c "print(max($KIMG / 2, 0.016))")"
tail -n 1 "$RUN/stats.jsonl" 2>/dev/null | "$PY" -c "
import json, sys
line = json.loads(sys.stdin.read() or 'null') or {}
print(f\"  trained {line.get('kimg', 0)} kimg of $KIMG in steps of {line.get('img_per_s', 0):.1f} img/s (last log line)\")" \
  | tee -a "$RESULTS/summary.txt"

# 4. evaluate --------------------------------------------------------------------------------
if ls "$RUN"/snapshot-*.pt > /dev/null 2>&1; then
  stage evaluate "$T_EVAL" "$PY" -m semistylegan evaluate "$RUN" "${EVAL[@]}" --out "$RESULTS/metrics.json"
  "$PY" - "$RESULTS/metrics.json" <<'EOF' 2>/dev/null | tee -a "$RESULTS/summary.txt"
import json, sys
m = json.load(open(sys.argv[1]))
parts = [("encoder", "mig"), ("encoder", "l2"), ("generator", "mig_gen"), ("generator", "l2_gen"),
         ("image_quality", "fid_oracle"), ("timings_s", "total")]
print("  metrics:", ", ".join(f"{a}.{b} {m[a][b]:.3f}" for a, b in parts
                              if isinstance(m.get(a, {}).get(b), (int, float))))
EOF
else
  note "evaluate: skipped (the run left no snapshot)"
  STATUS=1
fi

note "total: $(( $(date +%s) - START )) s, status $STATUS"
exit $STATUS
