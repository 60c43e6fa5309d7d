#!/usr/bin/env bash
# Install the runtime, build the demo run if there is none, and open the dashboard.
# Usage: bash scripts/launch.sh [streamlit args]   (runs root: $VLMLAB_RUNS_ROOT, default ./runs)
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt

export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
RUNS_ROOT="${VLMLAB_RUNS_ROOT:-runs}"
RUNS_ROOT="${RUNS_ROOT%%:*}"
if [ ! -d "$RUNS_ROOT/demo" ]; then
  .venv/bin/python -m dashboard demo --out "$RUNS_ROOT/demo"
fi
exec .venv/bin/streamlit run Home.py "$@"
