#!/usr/bin/env bash
# Fetch and unpack the course data into ./hw2_data (needs a network; nothing else here does).
#
#   bash get_dataset.sh URL_OR_ZIP
#
# The course distributes hw2_data.zip (link on the course page / NTU COOL). Pass its
# URL, or the path of a zip you already downloaded. Expected result: hw2_data/digits,
# hw2_data/face, hw2_data/textual_inversion, hw2_data/clip_zeroshot (see README).
set -euo pipefail
if [ $# -lt 1 ]; then
    sed -n '2,8p' "$0" >&2
    exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$1"
if [ -f "$src" ]; then
    zip="$src"
else
    zip="$here/hw2_data.zip"
    if [ -e "$zip" ]; then
        echo "error: $zip exists; remove it or pass it as the argument" >&2
        exit 2
    fi
    command -v wget >/dev/null && wget -O "$zip" "$src" || curl -L -o "$zip" "$src"
fi
if [ -d "$here/hw2_data" ]; then
    echo "note: $here/hw2_data exists; unzip will not overwrite existing files" >&2
fi
unzip -n -q "$zip" -d "$here"
echo "unpacked into $here/hw2_data"
