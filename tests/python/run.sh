#!/usr/bin/env bash
# Runs the pika compatibility tests. Creates (or reuses) tests/python/.venv and
# installs the pinned requirements into it. Broker selection is conftest.py's:
# WARREN_TEST_BROKER=host:port for a running broker, otherwise Warren from
# WARREN_BIN / $CARGO_TARGET_DIR/debug/warren / <repo>/target/debug/warren.
# Extra arguments go to pytest (e.g. -k rpc). Exits non-zero on any failure,
# including pytest's exit code 5 (no tests collected).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
# Only reinstall when requirements.txt changed since the last install.
stamp="$venv/.requirements.installed"
if [ ! -f "$stamp" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi

cd "$here"
status=0
"$venv/bin/python" -m pytest -v "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "run.sh: pytest collected no tests" >&2
fi
exit "$status"
