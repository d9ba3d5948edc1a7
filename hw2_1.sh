#!/usr/bin/env bash
# Problem 1: generate 50 images per digit per dataset into $1/mnistm and $1/svhn.
# The model is $PB1_CKPT if set, else checkpoints/pb1/model.safetensors, else the shipped one.
# Python: $PYTHON, else this checkout's .venv, else python3 (scripts/hw_python.sh).
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: bash hw2_1.sh OUTPUT_DIR" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/scripts/hw_python.sh"
exec "$PY" "$HERE/PB1/inference.py" --out-dir="$1"  # --flag=VALUE: a folder named -out is no option
