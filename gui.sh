#!/usr/bin/env bash
# Sets up on the first run (.venv), then opens the app. Try: ./gui.sh --demo
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python gui.py "$@"
