#!/usr/bin/env bash
# Installs what hsm-signer's scripts need when it is missing: SoftHSM2 and
# OpenSC (pkcs11-tool) from the distribution, and a Rust toolchain check.
set -euo pipefail

need=()
[ -e /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v pkcs11-tool >/dev/null || need+=(opensc)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq "${need[@]}" >&2
fi
if ! command -v cargo >/dev/null; then
  echo "error: cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 2
fi
