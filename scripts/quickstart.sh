#!/usr/bin/env bash
# Quickstart: set up .venv (first run only) and run scenarios/quickstart.yaml end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh
exec .venv/bin/emsfl-sim run scenarios/quickstart.yaml "$@"
