#!/usr/bin/env bash
# Computes the expected values of tests/vectors/signing.json with openssl and
# coreutils only, independently of hsm-signer's code, and prints the JSON.
#   tests/vectors/gen.sh > tests/vectors/signing.json      (regenerate)
#   tests/vectors/gen.sh --check                           (compare)
set -euo pipefail
cd "$(dirname "$0")"

# A 64-byte key, as an ACS access key is issued (88 base64 characters).
KEY_B64=$(printf 'hsm-signer test key: 64 bytes, like an Azure access key.........' | base64 -w0)
KEY_HEX=$(printf '%s' "$KEY_B64" | base64 -d | od -An -v -tx1 | tr -d ' \n')

# name | dialect | credential | method (as given) | url (as given) | date (as given) |
# body (base64 of the exact bytes) | METHOD | host | path_and_query (on the wire) | x-ms-date
CASES=(
"seed-appconfig-kv|appconfig|myid|GET|https://myconfig.azconfig.io/kv?fields=*&api-version=1.0|Fri, 11 May 2018 18:48:36 GMT||GET|myconfig.azconfig.io|/kv?fields=*&api-version=1.0|Fri, 11 May 2018 18:48:36 GMT"
"acs-identities-get|acs||GET|https://contoso.communication.azure.com/identities?api-version=2023-10-01|Fri, 11 May 2018 18:48:36 GMT||GET|contoso.communication.azure.com|/identities?api-version=2023-10-01|Fri, 11 May 2018 18:48:36 GMT"
"acs-create-token-post|acs||POST|https://contoso.communication.azure.com/identities?api-version=2021-03-07|Mon, 23 Nov 2026 12:00:00 GMT|$(printf '{"createTokenWithScopes":["chat"]}' | base64 -w0)|POST|contoso.communication.azure.com|/identities?api-version=2021-03-07|Mon, 23 Nov 2026 12:00:00 GMT"
"empty-path|acs||get|http://api.example.com|Thu, 01 Jan 2026 00:00:00 GMT||GET|api.example.com|/|Thu, 01 Jan 2026 00:00:00 GMT"
"binary-body|appconfig|bin-id|put|https://api.example.com/blob|Sat, 29 Feb 2028 23:59:59 GMT|$(for i in $(seq 0 255); do printf "\\\\$(printf %03o $i)"; done | base64 -w0)|PUT|api.example.com|/blob|Tue, 29 Feb 2028 23:59:59 GMT"
"query-plus-and-percent-2b|acs||GET|https://api.example.com/search?q=a+b%2Bc&x=%2b|Fri, 05 May 2023 08:09:10 GMT||GET|api.example.com|/search?q=a+b%2Bc&x=%2b|Fri, 05 May 2023 08:09:10 GMT"
"spaces-sent-as-percent-20|acs||GET|https://api.example.com/a b/?q=c d|Fri, 05 May 2023 08:09:10 GMT||GET|api.example.com|/a%20b/?q=c%20d|Fri, 05 May 2023 08:09:10 GMT"
"non-default-port|appconfig|port-id|DELETE|https://api.example.com:8443/kv/key1?label=%00|Fri, 05 May 2023 08:09:10 GMT||DELETE|api.example.com:8443|/kv/key1?label=%00|Fri, 05 May 2023 08:09:10 GMT"
"upper-case-host-default-port|acs||PATCH|HTTPS://API.Example.COM:443/Path/X?Y=Z#frag|Fri, 05 May 2023 08:09:10 GMT|$(printf 'hello' | base64 -w0)|PATCH|api.example.com|/Path/X?Y=Z|Fri, 05 May 2023 08:09:10 GMT"
"unpadded-date-input|acs||GET|https://api.example.com/|Fri, 5 May 2023 08:09:10 GMT||GET|api.example.com|/|Fri, 05 May 2023 08:09:10 GMT"
"utf8-body-and-path|appconfig|u-id|POST|https://api.example.com/kv/caf%C3%A9|Fri, 05 May 2023 08:09:10 GMT|$(printf '{"value":"caf\xc3\xa9 \xe2\x82\xac"}' | base64 -w0)|POST|api.example.com|/kv/caf%C3%A9|Fri, 05 May 2023 08:09:10 GMT"
)

# The date of the binary-body case is deliberately given with the wrong
# weekday name; the signer re-derives it from the calendar date.

json_escape() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

emit() {
  echo '{'
  echo "  \"key_b64\": \"$KEY_B64\","
  echo '  "cases": ['
  local first=1
  for c in "${CASES[@]}"; do
    IFS='|' read -r name dialect cred method url date body_b64 m host pq xdate <<<"$c"
    hash=$(printf '%s' "$body_b64" | base64 -d | openssl dgst -sha256 -binary | base64 -w0)
    sts=$(printf '%s\n%s\n%s;%s;%s' "$m" "$pq" "$xdate" "$host" "$hash")
    sig=$(printf '%s' "$sts" | openssl dgst -sha256 -mac HMAC -macopt hexkey:"$KEY_HEX" -binary | base64 -w0)
    if [ "$dialect" = appconfig ]; then
      auth="HMAC-SHA256 Credential=$cred&SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=$sig"
    else
      auth="HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=$sig"
    fi
    [ $first = 1 ] || echo '    ,'
    first=0
    cat <<JSON
    {
      "name": "$name",
      "dialect": "$dialect",
      "credential": "$cred",
      "method": "$method",
      "url": $(json_escape "$url"),
      "date": "$date",
      "body_b64": "$body_b64",
      "host": "$host",
      "path_and_query": $(json_escape "$pq"),
      "x_ms_date": "$xdate",
      "content_sha256": "$hash",
      "string_to_sign": $(json_escape "$sts"),
      "signature": "$sig",
      "authorization": "$auth"
    }
JSON
  done
  echo '  ]'
  echo '}'
}

if [ "${1:-}" = --check ]; then
  diff <(emit) signing.json && echo "tests/vectors/signing.json matches openssl"
else
  emit
fi
