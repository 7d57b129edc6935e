#!/usr/bin/env bash
# Creates .venv in the checkout, installs the pinned dependencies from
# requirements file $1 (default requirements.txt) and builds qlstm in place.
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=${1:-requirements.txt}
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
pip install --quiet -r "$requirements"
# The build must see the torch installed above, not an isolated copy.
MAX_JOBS=${MAX_JOBS:-2} pip install --quiet --no-build-isolation -e .
