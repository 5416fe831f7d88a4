#!/bin/sh
# The GPU check in one command, on a bare CUDA machine (Python 3.12 with its own torch and
# transformers, no network), from the repository root:
#
#     python bench/gpu/prepare.py     # here, where PyPI is reachable: fills bench/gpu/carry/
#     sh bench/gpu/run.sh OUT_DIR     # there: a table and gpu.json in OUT_DIR, in < 8 minutes
#
# The carried wheels go into a folder laid over the image's own packages (PYTHONPATH comes
# first), so funasr runs on the image's CUDA build of torch. Extra arguments go to measure.py
# (e.g. --smoke on a machine without a GPU); PYTHON and CARRY override the defaults.
set -eu
out=${1:-bench/out/gpu}
[ $# -gt 0 ] && shift
python=${PYTHON:-python3}
carry=${CARRY:-bench/gpu/carry}
site=${TMPDIR:-/tmp}/nanodictate-gpu-site
"$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$carry"/wheels/*.whl
PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
    exec "$python" bench/gpu/measure.py --carry "$carry" --out "$out" "$@"
