#!/usr/bin/env bash
# One call on a lent GPU machine (H100/H200): correctness checks, then a timing table.
#
# Prepare once, here:   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1
# Run (device tool):    run(command="bash bench/gpu.sh", carry=[".whl"], timeout_s=540)
# Every figure it prints goes to bench/RESULTS.md with the card's name.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, sys; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'python', sys.version.split()[0])"

status=0
step() { echo; echo "=== $1"; shift; timeout "${STEP_TIMEOUT:-240}" "$@" 2>&1 | tee -a "$OUT/gpu-log.txt" || status=1; }

# 1. Student: sttr-paper and sttr-small, fp16, 256/512/1024, batch 1 and batched
#    (targets: sttr-paper 512 px <= 5 ms at batch 1, >= 500 img/s batched).
step "student latency/throughput (fp16)" python3 -m styledistill bench \
    --presets sttr-small,sttr-paper --teacher none --sizes 256,512,1024 \
    --batch-sizes 1,32,128 --repeats 20 --device cuda --half --out "$OUT/students-fp16"

# 2. StyleID teacher on an SD1.5-shaped UNet/VAE (random weights: time does not depend on
#    values): correctness at real shapes (--check), per-pair time batch 1 vs 16, fresh vs
#    cached style, peak memory (targets: <= 0.3 s/pair batched, <= 12 GB at batch 1), for
#    both precisions: fast (all fp16) and official (fp32 inversion, fp16 autocast sampling).
step "StyleID teacher (SD1.5-shaped, precision fast)" python3 bench/teacher.py --sd15-shaped \
    --device cuda --batch 16 --precision fast --check
step "StyleID teacher (SD1.5-shaped, precision official)" python3 bench/teacher.py \
    --sd15-shaped --device cuda --batch 16 --precision official --check

# 2b. How far the two precisions drift from float64 (tiny random components, on the GPU).
step "StyleID precision drift vs float64" python3 bench/precision_drift.py --device cuda

# 3. Teacher vs student in one run on the same GPU (weight-free teacher; ratio >= 1000x
#    is the StyleID target, computed from steps 1 and 2).
step "texture teacher vs students" python3 -m styledistill bench \
    --presets sttr-small,sttr-paper --teacher texture --sizes 512 --teacher-sizes 512 \
    --batch-sizes 1,32 --device cuda --out "$OUT/texture-vs-student"

echo; echo "gpu.sh finished (status $status); outputs in $OUT"
exit $status
