"""A managed-identity endpoint in the App Service / Azure Automation style.

Clients find it through IDENTITY_ENDPOINT + IDENTITY_HEADER.

`ManagedIdentityCredential` and `DefaultAzureCredential` send
`GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=...` with `X-IDENTITY-HEADER`; the answer is
`{"access_token", "expires_on" (epoch seconds as a string), "resource", "token_type", "client_id"}`.
Plain HTTP on 127.0.0.1, as on the real hosts. Tokens and the header secret are never logged.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azrdp.emulator.builders import stable_guid

TOKEN_PATH = "/msi/token"  # noqa: S105 (a URL path, not a secret)
TOKEN_LIFETIME_S = 3600


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class IdentityServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, tenant_id: str, client_id: str) -> None:
        super().__init__(("127.0.0.1", 0), _IdentityHandler)
        self.secret = secrets.token_urlsafe(24)
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.issued = 0
        self._count_lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{TOKEN_PATH}"

    def issue(self, resource: str) -> dict[str, Any]:
        with self._count_lock:
            self.issued += 1
        now = int(time.time())
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_S,
            "appid": self.client_id,
            "oid": stable_guid("oid", self.client_id),
            "tid": self.tenant_id,
            "idtyp": "app",
        }
        token = f"{_b64({'typ': 'JWT', 'alg': 'none'})}.{_b64(claims)}.{secrets.token_urlsafe(16)}"
        return {
            "access_token": token,
            "expires_on": str(now + TOKEN_LIFETIME_S),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": self.client_id,
        }


class _IdentityHandler(BaseHTTPRequestHandler):
    server: IdentityServer
    protocol_version = "HTTP/1.1"
    server_version = "azrdp-emulator-identity"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line is harmless, but the emulator keeps stderr for its own output."""

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if url.path != TOKEN_PATH:
            self._reply(404, {"error": "not_found", "error_description": "Unknown path."})
            return
        header = self.headers.get("X-IDENTITY-HEADER", "")
        if not hmac.compare_digest(header.encode(), self.server.secret.encode()):
            self._reply(
                401,
                {"error": "invalid_request", "error_description": "Missing or wrong X-IDENTITY-HEADER."},
            )
            return
        resource = query.get("resource", "")
        if not resource:
            self._reply(
                400,
                {"error": "invalid_request", "error_description": "The 'resource' parameter is required."},
            )
            return
        self._reply(200, self.server.issue(resource))
