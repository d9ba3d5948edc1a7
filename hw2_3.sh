#!/usr/bin/env bash
# Problem 3: 25 images per prompt of input.json with Stable Diffusion v1.4 and the learned tokens.
# Usage: bash hw2_3.sh INPUT_JSON OUT_DIR SD_CKPT [extra PB3/inference.py flags]
# Embeddings are looked up in $PB3_EMBEDDINGS, then checkpoints/pb3/ (see python PB3/inference.py --help).
# Defaults: DPM-Solver++(2M) 20 steps, guidance 7.5, batch 5, fp16 on an RTX 2080 Ti (bf16 from compute
# capability 8.0): 4,000 UNet evaluations for 100 images, under 5 minutes there. DDIM: --solver ddim --steps 50.
set -euo pipefail
if [ "$#" -lt 3 ]; then
    echo "usage: bash hw2_3.sh INPUT_JSON OUT_DIR SD_CKPT  (e.g. hw2_data/textual_inversion/input.json out sd-v1-4.ckpt)" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/scripts/hw_python.sh"
exec "$PY" "$HERE/PB3/inference.py" --json="$1" --out-dir="$2" --ckpt="$3" "${@:4}"  # a path may begin with -
