#!/usr/bin/env bash
# Problem 1: generate 50 images per digit per dataset into $1/mnistm and $1/svhn.
# The model is $PB1_CKPT if set, else checkpoints/pb1/model.safetensors.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: bash hw2_1.sh OUTPUT_DIR" >&2
    exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${PYTHON:-python3}" "$here/PB1/inference.py" --out-dir "$1"
