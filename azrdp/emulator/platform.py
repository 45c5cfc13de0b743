"""A VM's platform side: Resource Health and boot diagnostics (screenshot and serial log).

A VM resource in a scenario may carry an emulator-side `platform` object (never served as such):

    "platform": {
      "health": {"availabilityState": "Unavailable", "summary": "...", "reasonType": "Unplanned", ...},
      "bootDiagnostics": {"screen": "getting-windows-ready", "serialLog": "text ..."}
    }

`health` holds the `properties` of its Resource Health availability status (see routes_health).
`bootDiagnostics.screen` picks the generated screenshot: `desktop` (booted, the default),
`getting-windows-ready` (stuck applying updates) or `stop-error` (a bug check); `serialLog` is the
serial console log's text (a short default per screen otherwise). The pictures are small generated
bitmaps and the default logs are illustrative, not captured from Windows: what the emulator models
is the flow (retrieveBootDiagnosticsData, then two SAS downloads from a storage host), not the pixels.

retrieveBootDiagnosticsData (official example VirtualMachine_RetrieveBootDiagnosticsData.json,
2024-07-01): `POST .../virtualMachines/{vm}/retrieveBootDiagnosticsData[?sasUriExpirationTimeInMinutes=N]`
-> 200 `{"consoleScreenshotBlobUri", "serialConsoleLogBlobUri"}`, SAS URLs on a storage host; N is 1 to
1440, default 120 (the operation's documentation). The blob host here is a second HTTPS server on
127.0.0.1 with the emulator's CA; it checks the SAS signature and expiry and answers Storage's XML
errors (learn.microsoft.com/rest/api/storageservices/common-rest-api-error-codes, blob-service-error-codes).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import secrets
import ssl
import struct
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from azrdp.emulator.vmstate import now_iso, power_state
from azrdp.emulator.wire import ArmError, Request, Response, Route, not_found, route

if TYPE_CHECKING:
    import re

    from azrdp.emulator.server import Emulator

Resource = dict[str, Any]

SCREENS = ("desktop", "getting-windows-ready", "stop-error")
STORAGE_VERSION = "2024-08-04"
DEFAULT_SAS_MINUTES = 120

DEFAULT_SERIAL = {
    "desktop": [
        "Computer is booting, SAC started and initialized.",
        "",
        'Use the "ch -?" command for information about using channels.',
        'Use the "?" command for general help.',
        "",
        "SAC>",
        "EVENT: The CMD command is now available.",
    ],
    "getting-windows-ready": [
        "Computer is booting, SAC started and initialized.",
        "",
        'Use the "ch -?" command for information about using channels.',
        "",
        "SAC>",
        "Configuring Windows updates: 100% complete.",
        "Getting Windows ready. Don't turn off your computer.",
    ],
    "stop-error": [
        "Computer is booting, SAC started and initialized.",
        "",
        "SAC>",
        "Your PC ran into a problem and needs to restart.",
        "Stop code: CRITICAL_PROCESS_DIED",
        "Collecting error info: 100% complete.",
    ],
}


def platform_of(vm: Resource) -> dict[str, Any]:
    value = vm.get("platform")
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------------------------------------
# Resource Health


def availability_status(vm: Resource, *, expand: bool = False) -> dict[str, Any]:
    explicit = platform_of(vm).get("health")
    state = power_state(vm)
    if isinstance(explicit, dict):
        props = dict(explicit)
    elif state in ("running", "starting"):
        props = {
            "availabilityState": "Available",
            "title": "Available",
            "summary": "There aren't any known Azure platform problems affecting this virtual machine.",
            "reasonType": "",
            "detailedStatus": "",
        }
    elif state in ("stopped", "stopping", "deallocated", "deallocating"):
        props = {
            "availabilityState": "Unavailable",
            "title": "Stopped by user or process",
            "summary": (
                "This virtual machine is stopped or deallocated as requested by an authorized user "
                "or process."
            ),
            "reasonType": "Customer Initiated",
            "context": "Customer Initiated",
            "category": "Not Applicable",
            "detailedStatus": "",
        }
    else:
        props = {"availabilityState": "Unknown", "title": "Unknown", "summary": "No health data yet."}
    props.setdefault("reportedTime", now_iso())
    if not expand:
        props.pop("recommendedActions", None)
    return {
        "id": f"{vm['id']}/providers/Microsoft.ResourceHealth/availabilityStatuses/current",
        "name": "current",
        "type": "Microsoft.ResourceHealth/AvailabilityStatuses",
        "location": vm.get("location", ""),
        "properties": props,
    }


# ---------------------------------------------------------------------------------------------
# Screenshots: small 24-bit BMPs


def _bmp(width: int, height: int, pixel: Any) -> bytes:
    row_size = (width * 3 + 3) & ~3
    rows = []
    for y in range(height - 1, -1, -1):  # bottom-up
        row = bytearray()
        for x in range(width):
            r, g, b = pixel(x, y)
            row += bytes((b, g, r))
        row += b"\0" * (row_size - len(row))
        rows.append(bytes(row))
    data = b"".join(rows)
    header = struct.pack("<2sIHHI", b"BM", 54 + len(data), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(data), 2835, 2835, 0, 0)
    return header + info + data


def screenshot(screen: str, width: int = 160, height: int = 120) -> bytes:
    """A small picture that tells the three screens apart at a glance."""
    blue = (0, 120, 215)
    white = (255, 255, 255)

    def in_box(x: int, y: int, x0: float, y0: float, x1: float, y1: float) -> bool:
        return x0 * width <= x < x1 * width and y0 * height <= y < y1 * height

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        if screen == "stop-error":  # ":(" on blue
            if in_box(x, y, 0.15, 0.20, 0.20, 0.27) or in_box(x, y, 0.15, 0.40, 0.20, 0.47):
                return white
            if in_box(x, y, 0.26, 0.18, 0.29, 0.50) and not in_box(x, y, 0.27, 0.22, 0.29, 0.46):
                return white
            if in_box(x, y, 0.15, 0.62, 0.80, 0.66) or in_box(x, y, 0.15, 0.72, 0.60, 0.76):
                return white
            return blue
        if screen == "getting-windows-ready":  # a ring of dots above a line of text, on blue
            cx, cy = width / 2, height * 0.40
            d2 = (x - cx) ** 2 + (y - cy) ** 2
            if (0.07 * height) ** 2 <= d2 <= (0.10 * height) ** 2 and (x + y) % 6 < 3:
                return white
            if in_box(x, y, 0.25, 0.62, 0.75, 0.66):
                return white
            return blue
        # the sign-in screen: a dark gradient, a clock and a user tile
        if in_box(x, y, 0.08, 0.70, 0.30, 0.80) or in_box(x, y, 0.45, 0.35, 0.55, 0.48):
            return white
        shade = 40 + (60 * y) // height
        return (shade // 2, shade, shade + 30)

    return _bmp(width, height, pixel)


def serial_log(vm: Resource) -> bytes:
    spec = platform_of(vm).get("bootDiagnostics") or {}
    text = spec.get("serialLog")
    if not isinstance(text, str):
        text = "\r\n".join(DEFAULT_SERIAL.get(_screen(vm), DEFAULT_SERIAL["desktop"])) + "\r\n"
    return text.encode("utf-8")


def _screen(vm: Resource) -> str:
    screen = (platform_of(vm).get("bootDiagnostics") or {}).get("screen", "desktop")
    return screen if screen in SCREENS else "desktop"


def boot_diagnostics_enabled(vm: Resource) -> bool:
    profile = ((vm.get("properties") or {}).get("diagnosticsProfile") or {}).get("bootDiagnostics") or {}
    return bool(profile.get("enabled"))


# ---------------------------------------------------------------------------------------------
# The storage host


class BlobServer(ThreadingHTTPServer):
    """Serves the boot diagnostics blobs of one emulator by SAS URL, over HTTPS on 127.0.0.1."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, emulator: Emulator, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _BlobHandler)
        self.emulator = emulator
        self.context = context
        self._key = secrets.token_bytes(32)
        self._blobs: dict[str, tuple[str, str]] = {}  # path -> (VM id, "screenshot" | "serial")
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []  # method, path, status, header names (no values)

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(tls, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects are normal; never print request data."""

    def _sign(self, path: str, expiry: str) -> str:
        return hmac.new(self._key, f"{path}\n{expiry}".encode(), hashlib.sha256).hexdigest()

    def sas_url(self, vm: Resource, kind: str, minutes: int) -> str:
        vm_id = str((vm.get("properties") or {}).get("vmId") or uuid.uuid5(uuid.NAMESPACE_URL, vm["id"]))
        name = str(vm.get("name"))
        container = f"bootdiagnostics-{name[:9].lower()}-{vm_id}"
        blob = f"{name}.{vm_id}.{'screenshot.bmp' if kind == 'screenshot' else 'serialconsole.log'}"
        path = f"/{quote(container)}/{quote(blob)}"
        expiry = (
            datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
        ).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._lock:
            self._blobs[path] = (vm["id"], kind)
        sig = self._sign(path, expiry)
        return f"{self.endpoint}{path}?sv={STORAGE_VERSION}&sr=b&sp=r&se={quote(expiry)}&sig={sig}"

    def lookup(self, path: str) -> tuple[str, str] | None:
        with self._lock:
            return self._blobs.get(path)

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)


def _storage_error(status: int, code: str, message: str) -> tuple[int, bytes]:
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}\nRequestId:{uuid.uuid4()}\n"
        f"Time:{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.0000000Z')}"
        "</Message></Error>"
    )
    return status, body.encode()


class _BlobHandler(BaseHTTPRequestHandler):
    server: BlobServer
    protocol_version = "HTTP/1.1"
    server_version = "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: requests are recorded without header values."""

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._answer(
            *_storage_error(403, "AuthorizationPermissionMismatch", "This request is not authorized.")
        )

    def _serve(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        status, body, kind = self._resolve(url.path, query)
        content_type = "application/xml"
        if status == 200:
            content_type = "image/bmp" if kind == "screenshot" else "text/plain"
        self.server.record(
            {
                "method": self.command,
                "path": url.path,
                "status": status,
                "headers": sorted(k.lower() for k in self.headers),
            }
        )
        self._answer(status, body, content_type)

    def _resolve(self, path: str, query: dict[str, str]) -> tuple[int, bytes, str]:
        found = self.server.lookup(path)
        expiry = query.get("se", "")
        if not query.get("sig") or not hmac.compare_digest(query["sig"], self.server._sign(path, expiry)):
            return (
                *_storage_error(
                    403,
                    "AuthenticationFailed",
                    "Server failed to authenticate the request. Make sure the value of Authorization header "
                    "is formed correctly including the signature.",
                ),
                "",
            )
        try:
            expires = datetime.datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=datetime.timezone.utc
            )
        except ValueError:
            expires = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
        if expires < datetime.datetime.now(datetime.timezone.utc):
            return (
                *_storage_error(
                    403, "AuthenticationFailed", "Signature not valid in the specified time frame."
                ),
                "",
            )
        if found is None:
            return (*_storage_error(404, "BlobNotFound", "The specified blob does not exist."), "")
        vm_id, kind = found
        emu = self.server.emulator
        with emu.store.lock:
            vm = emu.store.get(vm_id)
            if vm is None:
                return (*_storage_error(404, "BlobNotFound", "The specified blob does not exist."), "")
            data = screenshot(_screen(vm)) if kind == "screenshot" else serial_log(vm)
        return 200, data, kind

    def _answer(self, status: int, body: bytes, content_type: str = "application/xml") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.send_header("x-ms-version", STORAGE_VERSION)
        if status == 200:
            self.send_header("x-ms-blob-type", "BlockBlob")
            self.send_header("ETag", f'"0x{hashlib.sha1(body).hexdigest()[:15].upper()}"')  # noqa: S324
        self.end_headers()
        if self.command != "HEAD":
            with contextlib.suppress(OSError):
                self.wfile.write(body)


def start_blob_server(emulator: Emulator, context: ssl.SSLContext) -> tuple[BlobServer, threading.Thread]:
    server = BlobServer(emulator, context)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="azrdp-emulator-blobs", daemon=True
    )
    thread.start()
    return server, thread


# ---------------------------------------------------------------------------------------------
# the ARM route


def retrieve_boot_diagnostics_data(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    emu.require_group(m["sub"], m["rg"])
    vm = emu.store.get(
        f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}/providers/Microsoft.Compute/virtualMachines/{m['vm']}"
    )
    if vm is None:
        raise not_found("Microsoft.Compute/virtualMachines", m["vm"], m["rg"])
    raw = req.query.get("sasUriExpirationTimeInMinutes")
    try:
        minutes = int(raw) if raw is not None else DEFAULT_SAS_MINUTES
    except ValueError:
        minutes = 0
    if not 1 <= minutes <= 1440:
        raise ArmError(
            400,
            "InvalidParameter",
            "The value of parameter sasUriExpirationTimeInMinutes is invalid: use 1 to 1440 minutes.",
            target="sasUriExpirationTimeInMinutes",
        )
    if not boot_diagnostics_enabled(vm):
        # The code is not documented; azrdp reads diagnosticsProfile first and never asks then.
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Boot diagnostics is not enabled for virtual machine '{vm['name']}'. Enable it, then retry.",
        )
    blobs = emu.blobs
    return Response(
        200,
        {
            "consoleScreenshotBlobUri": blobs.sas_url(vm, "screenshot", minutes),
            "serialConsoleLogBlobUri": blobs.sas_url(vm, "serial", minutes),
        },
    )


def routes() -> list[Route]:
    from azrdp.emulator.routes_compute import API_VERSIONS, VM

    return [route("POST", VM + r"/retrievebootdiagnosticsdata", retrieve_boot_diagnostics_data, API_VERSIONS)]
