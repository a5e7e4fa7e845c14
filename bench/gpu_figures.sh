#!/usr/bin/env bash
# Every GPU figure the engine's targets name, in one run: fast-method speed and memory
# (1024x1024, tiled 7680x4320), Gatys speed (512x512 x 500 L-BFGS steps) and memory
# (2048x2048), then the bundled styles' quality report with Gatys on GPU.
#
#   NST_SHARED=DIR bash bench/gpu_figures.sh [LOG_DIR]
#
# DIR: ../shared or a copy from bench/pack_reference_data.py --quality. Needs torch,
# torchvision, pillow and safetensors; the project itself need not be installed. The
# log (and the quality report's contact sheet) go to LOG_DIR, default bench/out.
set -euo pipefail
cd "$(dirname "$0")/.."
log_dir=${1:-bench/out}
mkdir -p "$log_dir"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
run() { echo "== $*"; "$python" "$@" || echo "== failed (exit $?): $*"; }  # go on
{
    run bench/bench_fast.py --runs 20
    run bench/bench_gatys.py
    run bench/quality_report.py --gatys-images 4 --gatys-iterations 300 \
        --contact-sheet "$log_dir/contact-sheet.jpg"
} 2>&1 | tee "$log_dir/gpu-figures.log"
