#!/usr/bin/env bash
# Check the house (lint with docstring rules, import contracts, types), then run the test suite
# (default: fast tests; pass -m slow or "-m 'slow or not slow'" for more).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh test
.venv/bin/python -m ruff check emsfl_sim tests benchmarks experiments
.venv/bin/lint-imports --no-cache
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest "$@"
