#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs SoftHSM2 when absent,
# creates a throwaway token, checks formatting, lints and docs, and runs
# every test with REQUIRE_HSM=1 (a PKCS#11 test that cannot reach SoftHSM
# fails instead of skipping).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --all-targets --all-features --quiet -- -D warnings
echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
echo "==> vectors match openssl"
tests/vectors/gen.sh --check

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
eval "$(scripts/softhsm-init.sh "$work/hsm")"
export REQUIRE_HSM=1

echo "==> cargo test (SoftHSM token $HSM_SIGNER_TOKEN_LABEL, REQUIRE_HSM=1)"
cargo test --all-features --no-fail-fast 2>&1 | tee "$work/test.log"
status=${PIPESTATUS[0]}
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$work/test.log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '; [0-9]+ failed' "$work/test.log" | awk '{s+=$2} END {print s+0}')
echo "${passed} passed, ${failed} failed"
exit "$status"
