#!/usr/bin/env bash
# Runs every Warren test on a fresh machine: installs what the build needs,
# checks formatting and lints, builds, runs the Rust tests (unit, property,
# lapin end-to-end), the pika client tests and the short, seeded selection
# of chaos scenarios (chaos/, faults under load with loss checkers). This is
# the README's test command, and what .ci/run calls.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# Debian packages the build needs (bindgen for RocksDB needs libclang), and
# what the chaos scenarios use to cut links between nodes.
need=()
for pkg in libclang-dev python3-venv iproute2 iptables libfaketime; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "run-all.sh: missing Debian packages: ${need[*]} (run as root or install them)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build"
cargo build --workspace --all-targets
echo "== cargo test"
cargo test --workspace
echo "== pika tests"
target="${CARGO_TARGET_DIR:-$repo/target}"
WARREN_BIN="$target/debug/warren" bash tests/python/run.sh
echo "== chaos scenarios (CI selection)"
bash chaos/run --ci
