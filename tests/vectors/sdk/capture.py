"""Captures requests signed by the official Azure SDKs, as raw HTTP files.

Regenerate (needs PyPI):
    python3 -m venv /tmp/sdk && /tmp/sdk/bin/pip install azure-communication-identity azure-appconfiguration
    /tmp/sdk/bin/python tests/vectors/sdk/capture.py
Nothing is sent anywhere: a transport that records the request and stops
replaces the network. The key is the test key of tests/vectors/signing.json.
"""

import json
import os
from importlib.metadata import version
from urllib.parse import urlsplit

from azure.core.credentials import AzureKeyCredential
from azure.core.pipeline.transport import HttpTransport

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "..", "signing.json")) as f:
    KEY_B64 = json.load(f)["key_b64"]


class Captured(Exception):
    pass


class Capture(HttpTransport):
    """Records the outgoing request instead of sending it."""

    def __init__(self):
        self.request = None

    def __enter__(self):
        return self

    def __exit__(self, *args):
        pass

    def open(self):
        pass

    def close(self):
        pass

    def send(self, request, **kwargs):
        self.request = request
        raise Captured()


def raw_http(request):
    url = urlsplit(request.url)
    target = url.path or "/"
    if url.query:
        target += "?" + url.query
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    lines = [f"{request.method} {target} HTTP/1.1", f"Host: {url.netloc}"]
    for name, value in request.headers.items():
        if name.lower() not in ("host", "content-length"):
            lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def date_of(request):
    return request.headers.get("x-ms-date") or request.headers.get("Date")


def capture(name, call):
    transport = Capture()
    try:
        call(transport)
    except Captured:
        pass
    req = transport.request
    with open(os.path.join(HERE, name + ".http"), "wb") as f:
        f.write(raw_http(req))
    return {"file": name + ".http", "now": date_of(req)}


def main():
    from azure.appconfiguration import AzureAppConfigurationClient, ConfigurationSetting
    from azure.communication.identity import CommunicationIdentityClient

    cases = []
    acs = lambda t: CommunicationIdentityClient(
        "https://contoso.communication.azure.com", AzureKeyCredential(KEY_B64), transport=t
    )
    c = capture("acs-create-user", lambda t: acs(t).create_user())
    cases.append({**c, "dialect": "acs", "credential": None})
    c = capture("acs-get-token", lambda t: acs(t).get_token(
        __import__("azure.communication.identity", fromlist=["CommunicationUserIdentifier"]).CommunicationUserIdentifier("8:acs:test-user"),
        ["chat"],
    ))
    cases.append({**c, "dialect": "acs", "credential": None})

    conn = f"Endpoint=https://contoso.azconfig.io;Id=sdk-cred-id;Secret={KEY_B64}"
    appconfig = lambda t: AzureAppConfigurationClient.from_connection_string(conn, transport=t)
    c = capture("appconfig-get-setting", lambda t: appconfig(t).get_configuration_setting(key="app:color", label="prod"))
    cases.append({**c, "dialect": "appconfig", "credential": "sdk-cred-id"})
    c = capture("appconfig-set-setting", lambda t: appconfig(t).set_configuration_setting(
        ConfigurationSetting(key="app:greeting", value="héllo, wörld", content_type="text/plain")
    ))
    cases.append({**c, "dialect": "appconfig", "credential": "sdk-cred-id"})

    manifest = {
        "generator": "tests/vectors/sdk/capture.py",
        "sdks": {p: version(p) for p in ("azure-core", "azure-communication-identity", "azure-appconfiguration")},
        "cases": cases,
    }
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
