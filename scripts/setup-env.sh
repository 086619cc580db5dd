#!/usr/bin/env bash
# Create (once) the project's virtualenv in .venv and install what is needed.
# Usage: scripts/setup-env.sh [EXTRA]   (EXTRA e.g. "test"; installs .[EXTRA])
# torch is installed first, pinned to the CPU wheel, so the installer never pulls a multi-GB
# CUDA build; set TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cu124)
# to install a CUDA build instead, or TORCH_SPEC to pick another version.
# The installer is uv (a uv on PATH, else uv installed into the venv with pip), several times
# faster than pip; it falls back to pip when uv cannot be had. EMSFL_INSTALLER=pip forces pip.
# uv is given pip's own index settings (pip config: index-url, extra-index-url, find-links,
# constraint, no-index, cert), so both install from the same places.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRA=${1:-}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.emsfl-installed${EXTRA:+-$EXTRA}"
log="$VENV/.pip-install.log"
# the installer's own notices (setuptools' editable-install banner, index warnings) go to a log
# that is shown only when it fails, so a first run prints nothing a newcomer has to ignore
quietly() {
  if ! "$@" > "$log" 2>&1; then
    cat "$log" >&2
    echo "setup-env: $* failed (log above, also in $log)" >&2
    exit 1
  fi
}

# pip's index settings as uv options, one per line; $1: an index URL replacing pip's index-url,
# or "--cert" for pip's certificate bundle (empty when it has none)
uv_index_args() {
  "$VENV/bin/python" - "${1:-}" <<'EOF'
import ast, subprocess, sys
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
rank = {"global": 0, "install": 1, ":env:": 2}  # pip: the install section beats global, env vars beat both
conf = {}
for line in out.splitlines():
    key, sep, value = line.partition("=")
    section, _, name = key.rpartition(".")
    if not sep or section not in rank:
        continue
    try:
        value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        continue
    if name not in conf or rank[section] >= conf[name][0]:
        conf[name] = (rank[section], value)
get = lambda name: conf.get(name, (0, ""))[1]
if sys.argv[1] == "--cert":
    sys.exit(print(get("cert")))
args = []
index = sys.argv[1] or get("index-url")
if index:
    args += ["--index-url", index]
extras = get("extra-index-url").split()
for url in extras:
    args += ["--extra-index-url", url]
for link in get("find-links").split():
    args += ["--find-links", link]
for path in get("constraint").split():
    args += ["--constraints", path]
if get("no-index").lower() in ("1", "true", "yes", "on"):
    args += ["--no-index"]
if extras:  # pip takes the best version across all indexes; uv would stop at the first one listing a name
    args += ["--index-strategy", "unsafe-best-match"]
if args:
    print("\n".join(args))
EOF
}

if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  uv=""
  if [ "${EMSFL_INSTALLER:-uv}" != pip ]; then
    if command -v uv >/dev/null 2>&1; then
      uv=$(command -v uv)
    elif [ -x "$VENV/bin/uv" ] || "$VENV/bin/python" -m pip install -q "uv>=0.5" >"$log" 2>&1; then
      uv="$VENV/bin/uv"
    fi
  fi
  target="."
  if [ -n "$EXTRA" ]; then target=".[$EXTRA]"; fi
  # numpy with torch: importing torch without it prints a NumPy warning a newcomer would have to ignore
  torch_pkgs=("${TORCH_SPEC:-torch==2.13.0}" "numpy>=1.26,<3")
  if [ -n "$uv" ]; then
    cert=$(uv_index_args --cert)
    if [ -n "$cert" ] && [ -z "${SSL_CERT_FILE:-}" ]; then export SSL_CERT_FILE="$cert"; fi
    index_args=(); torch_index_args=()  # read loops, not mapfile: macOS ships bash 3.2
    while IFS= read -r a; do if [ -n "$a" ]; then index_args+=("$a"); fi; done < <(uv_index_args)
    while IFS= read -r a; do if [ -n "$a" ]; then torch_index_args+=("$a"); fi; done < <(uv_index_args "${TORCH_INDEX_URL:-}")
    uvpip() { quietly "$uv" pip "$1" --python "$VENV/bin/python" "${@:2}"; }
    uvpip install ${torch_index_args[@]+"${torch_index_args[@]}"} "${torch_pkgs[@]}"
    "$VENV/bin/python" -c "import torch" # fail early if torch did not install
    uvpip install ${index_args[@]+"${index_args[@]}"} -e "$target"
  else
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    torch_args=()
    if [ -n "${TORCH_INDEX_URL:-}" ]; then torch_args=(--index-url "$TORCH_INDEX_URL"); fi
    quietly "$VENV/bin/python" -m pip install -q "${torch_pkgs[@]}" "${torch_args[@]}"
    "$VENV/bin/python" -c "import torch" # fail early if torch did not install
    quietly "$VENV/bin/python" -m pip install -q -e "$target"
  fi
  "$VENV/bin/python" -c "import emsfl_sim, simpy, skyfield, peft, transformers"
  touch "$stamp"
fi
