#!/usr/bin/env bash
# Install everything the tests need from this repo's own files, then run lint, type check + the whole suite.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Debian packages for the browser tests (packages-dev.txt)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  xargs -a packages-dev.txt $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
fi

echo "== python environment (.venv, requirements-dev.txt)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt

echo "== ruff"
.venv/bin/ruff check .

echo "== mypy (dashboard/, config in pyproject.toml)"
.venv/bin/mypy

echo "== pytest"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest "$@"
