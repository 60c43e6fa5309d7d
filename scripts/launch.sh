#!/usr/bin/env bash
# Install the runtime and open the dashboard at once. When the runs root has no demo run (or an
# unfinished one: it resumes), the first page view starts training it in the background
# (VLMLAB_DEMO_AUTOBUILD=1); its checkpoints appear, and are scored, as they are saved.
# Usage: bash scripts/launch.sh [streamlit args]   (runs root: $VLMLAB_RUNS_ROOT, default ./runs)
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt

export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export VLMLAB_DEMO_AUTOBUILD="${VLMLAB_DEMO_AUTOBUILD:-1}"
# Two glibc malloc arenas instead of up to 8 per core: each session thread otherwise gets one, and
# freed upload/decode buffers stay resident in all of them (bench/RESULTS.md, issue 30). Read at start.
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
exec .venv/bin/streamlit run Home.py "$@"
