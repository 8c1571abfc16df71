#!/usr/bin/env bash
# Runs every benchmark and prints one table (ours vs a reference measured in
# the same run, median [min..max] of 5 repetitions, and the ratio).
# Installs SoftHSM2/OpenSC/GNU time when missing, builds in release mode,
# creates a throwaway token and imports a 64-byte key.
#   BENCH_ONLY=N     run row N only
#   BENCH_BIG_GIB=2  size of the body-file row
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh
if [ ! -x /usr/bin/time ]; then
  echo "==> installing GNU time" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >&2
fi

echo "==> building (release)" >&2
cargo build --release --quiet --bin hsm-signer
cargo bench --no-run --quiet --bench perf

work=$(mktemp -d "${TMPDIR:-/tmp}/hsm-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
export TOKEN_LABEL=hsm-signer-bench
eval "$(scripts/softhsm-init.sh "$work/hsm")"
BENCH_KEY=$(head -c 64 /dev/urandom | base64 -w0)
export BENCH_KEY BENCH_KEY_LABEL=bench-key BENCH_KEY_ID=be0c4e11
target/release/hsm-signer key import --token-label "$HSM_SIGNER_TOKEN_LABEL" \
  --label "$BENCH_KEY_LABEL" --id "$BENCH_KEY_ID" --from-env BENCH_KEY >&2
export BENCH_BIN="$PWD/target/release/hsm-signer" BENCH_DIR="$work"

cargo bench --quiet --bench perf
