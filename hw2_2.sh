#!/usr/bin/env bash
# Problem 2: DDIM on the pretrained face UNet.
# Usage: bash hw2_2.sh NOISE_DIR OUT_DIR UNET_PT
set -euo pipefail
if [ "$#" -ne 3 ]; then
    echo "usage: bash hw2_2.sh NOISE_DIR OUT_DIR UNET_PT  (e.g. hw2_data/face/noise out hw2_data/face/UNet.pt)" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/scripts/hw_python.sh"
exec "$PY" "$HERE/PB2/inference.py" --noise-dir="$1" --out-dir="$2" --unet="$3"  # a path may begin with -
