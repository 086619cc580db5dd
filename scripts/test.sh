#!/usr/bin/env bash
# Run the test suite (default: fast tests; pass -m slow or "-m 'slow or not slow'" for more).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh test
exec .venv/bin/python -m pytest "$@"
