#!/usr/bin/env bash
# Creates a throwaway SoftHSM2 token under DIR and prints the export lines
# that point hsm-signer at it:
#   eval "$(scripts/softhsm-init.sh /tmp/hsm)"
# Optional env: TOKEN_LABEL (default hsm-signer-test), USER_PIN, SO_PIN.
set -euo pipefail

dir=${1:?usage: softhsm-init.sh DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
label=${TOKEN_LABEL:-hsm-signer-test}
user_pin=${USER_PIN:-$(od -An -N6 -tu2 /dev/urandom | tr -d ' \n' | head -c 8)}
so_pin=${SO_PIN:-$(od -An -N6 -tu2 /dev/urandom | tr -d ' \n' | head -c 8)}

command -v softhsm2-util >/dev/null || { echo "error: softhsm2-util not found (apt-get install softhsm2)" >&2; exit 2; }
mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
sed "s|@TOKENDIR@|$dir/tokens|" "$here/softhsm/softhsm2.conf" > "$dir/softhsm2.conf"
export SOFTHSM2_CONF="$dir/softhsm2.conf"
softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$user_pin" >/dev/null
printf '%s\n' "$user_pin" > "$dir/user.pin"
chmod 600 "$dir/user.pin"

cat <<OUT
export SOFTHSM2_CONF='$dir/softhsm2.conf'
export HSM_SIGNER_MODULE='/usr/lib/softhsm/libsofthsm2.so'
export HSM_SIGNER_PIN='$user_pin'
export HSM_SIGNER_TOKEN_LABEL='$label'
export HSM_SIGNER_PIN_FILE='$dir/user.pin'
OUT
