#!/usr/bin/env bash
# The main job, end to end on a throwaway SoftHSM2 token:
# install what is missing -> build -> create a token -> import an access key
# (sensitive, non-extractable) -> sign a request with the HMAC computed inside
# the token -> verify it -> show a tampered copy rejected -> list the key.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh
echo "==> building hsm-signer" >&2
cargo build --quiet --bin hsm-signer
bin=target/debug/hsm-signer

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
TOKEN_LABEL=hsm-signer-demo
export TOKEN_LABEL
eval "$(scripts/softhsm-init.sh "$work/hsm")"
echo "==> throwaway SoftHSM2 token \"$HSM_SIGNER_TOKEN_LABEL\" in $work/hsm"

# An access key as Azure issues it: 64 random bytes, base64. It only ever
# travels through an environment variable; the token keeps it from here on.
DEMO_ACCESS_KEY=$(head -c 64 /dev/urandom | base64 -w0)
export DEMO_ACCESS_KEY

echo
echo "==> \$ hsm-signer key import --token-label $TOKEN_LABEL --label demo-acs --from-env DEMO_ACCESS_KEY"
$bin key import --token-label "$TOKEN_LABEL" --label demo-acs --from-env DEMO_ACCESS_KEY

url='https://contoso.communication.azure.com/identities?api-version=2023-10-01'
body='{"createTokenWithScopes":["chat"]}'
echo
echo "==> \$ hsm-signer sign --token-label $TOKEN_LABEL --key-label demo-acs --body '$body' POST '$url'"
$bin sign --token-label "$TOKEN_LABEL" --key-label demo-acs --body "$body" POST "$url" | tee "$work/headers"

# The request as it goes on the wire.
{
  printf 'POST /identities?api-version=2023-10-01 HTTP/1.1\r\n'
  printf 'Host: contoso.communication.azure.com\r\n'
  sed 's/$/\r/' "$work/headers"
  printf 'Content-Type: application/json\r\nContent-Length: %s\r\n\r\n%s' "${#body}" "$body"
} > "$work/request.http"

echo
echo "==> \$ hsm-signer verify --token-label $TOKEN_LABEL --key-label demo-acs --request request.http"
$bin verify --token-label "$TOKEN_LABEL" --key-label demo-acs --request "$work/request.http"

echo
echo "==> the same request with the body changed in transit (expect exit 1)"
sed 's/chat/voip/' "$work/request.http" > "$work/tampered.http"
set +e
$bin verify --token-label "$TOKEN_LABEL" --key-label demo-acs --request "$work/tampered.http"
rc=$?
set -e
[ "$rc" = 1 ] || { echo "error: the tampered request was not rejected (exit $rc)" >&2; exit 1; }

echo
echo "==> the token's signature equals an in-process HMAC with the same secret"
date_hdr=$(sed -n 's/^x-ms-date: //p' "$work/headers")
hsm_sig=$($bin sign --token-label "$TOKEN_LABEL" --key-label demo-acs --date "$date_hdr" --body "$body" POST "$url" | sed -n 's/.*Signature=//p')
sw_sig=$($bin sign --key-env DEMO_ACCESS_KEY --date "$date_hdr" --body "$body" POST "$url" | sed -n 's/.*Signature=//p')
echo "token:    $hsm_sig"
echo "software: $sw_sig"
[ "$hsm_sig" = "$sw_sig" ] || { echo "error: signatures differ" >&2; exit 1; }

echo
echo "==> \$ hsm-signer key list --token-label $TOKEN_LABEL"
$bin key list --token-label "$TOKEN_LABEL"
echo
echo "==> \$ hsm-signer doctor --token-label $TOKEN_LABEL --key-label demo-acs"
$bin doctor --token-label "$TOKEN_LABEL" --key-label demo-acs
echo
echo "demo complete: the key stayed inside the token (sensitive, not extractable); signing and verification ran there."
