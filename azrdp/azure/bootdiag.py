"""Boot diagnostics: the console screenshot and the serial log of a VM.

`POST .../virtualMachines/{vm}/retrieveBootDiagnosticsData` (VirtualMachines_RetrieveBootDiagnosticsData)
answers two short-lived SAS URLs on a storage host. They are fetched with a pipeline of their own:
HTTPS only, the same CA rules as ARM (AZRDP_CA_BUNDLE, else the system's), no redirects (only the
host ARM returned is contacted), no Authorization header (the SAS is the credential; the ARM bearer
token never goes to a storage host), and size caps. The screenshot is saved under the user's cache
directory with a name azrdp makes itself; the serial log's last lines are kept.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from azrdp.cache import cache_dir
from azrdp.errors import AzrdpError
from azrdp.facts import BootDiagnostics, VmFacts

if TYPE_CHECKING:
    from azrdp.azure.clients import Clients

SAS_MINUTES = 5
SCREENSHOT_CAP = 16 * 1024 * 1024  # a 1920x1080 32-bit bitmap is about 8 MB
SERIAL_CAP = 16 * 1024 * 1024
SERIAL_TAIL_BYTES = 64 * 1024
SERIAL_TAIL_LINES = 20
DOWNLOAD_TIMEOUT = 60
_MAGIC = ((b"BM", "bmp"), (b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"))
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class BlobError(AzrdpError):
    code = "BootDiagnosticsDownloadFailed"


def _check_url(url: Any, what: str) -> str:
    if not isinstance(url, str) or not url:
        raise BlobError(f"Azure returned no {what} URL.")
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise BlobError(f"The {what} URL Azure returned is not an https URL; azrdp does not fetch it.")
    return url


def _pipeline(ca_bundle: str | None) -> Any:
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import RetryPolicy, UserAgentPolicy

    from azrdp import __version__

    # No authentication policy and no RedirectPolicy: the SAS URL is all the credential there is, and a
    # redirect to another host is refused (a 3xx is an error below).
    policies = [UserAgentPolicy(f"azrdp/{__version__}"), RetryPolicy(retry_total=3, retry_backoff_max=10)]
    return PipelineClient(
        base_url="https://storage.invalid", policies=policies, connection_verify=ca_bundle or True
    )


def _failure(exc: Exception) -> str:
    """What went wrong, without the URL: azure-core's messages quote it, SAS signature included."""
    return type(exc).__name__


def _stream(client: Any, url: str, cap: int, what: str) -> Iterator[bytes]:
    from azure.core.exceptions import AzureError
    from azure.core.rest import HttpRequest

    try:
        response = client.send_request(HttpRequest("GET", url), stream=True, timeout=DOWNLOAD_TIMEOUT)
    except AzureError as exc:
        raise BlobError(f"Could not download the {what} ({_failure(exc)}).") from None
    try:
        if response.status_code != 200:
            # Storage's error body is a small XML document naming the code (never the SAS).
            body = b""
            if response.status_code >= 400:
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > 4096:
                        break
            code = re.search(r"<Code>([^<]{1,80})</Code>", body.decode("utf-8", "replace"))
            raise BlobError(
                f"The storage host answered {response.status_code}"
                + (f" {code.group(1)}" if code else "")
                + f" for the {what}."
            )
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > cap:
            raise BlobError(f"The {what} is {int(length)} bytes, more than azrdp reads ({cap}).")
        total = 0
        for chunk in response.iter_bytes():
            total += len(chunk)
            yield chunk
            if total > cap:
                break
    except AzureError as exc:
        raise BlobError(f"The download of the {what} failed ({_failure(exc)}).") from None
    finally:
        response.close()


def _save_screenshot(data: bytes, facts: VmFacts) -> tuple[str, str]:
    fmt = next((name for magic, name in _MAGIC if data.startswith(magic)), None)
    if fmt is None:
        raise BlobError("The screenshot is not a BMP, PNG or JPEG image; azrdp did not save it.")
    folder = cache_dir() / "boot-diagnostics"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    stem = _SAFE.sub("_", f"{facts.resource_group}-{facts.name}-{stamp}")[:150]
    path = folder / f"{stem}.{fmt}"
    temp = folder / f".{stem}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(temp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return str(path), fmt


def read_boot_diagnostics(clients: Clients, facts: VmFacts) -> BootDiagnostics:
    """Screenshot (saved) and serial log tail of one VM; a failure is kept in `error`."""
    from azrdp.azure.arm import COMPUTE_API, resource_path
    from azrdp.azure.clients import translate_errors

    try:
        with translate_errors(f"the boot diagnostics of VM '{facts.name}'"):
            uris = clients.arm.post(
                resource_path(facts.id) + "/retrieveBootDiagnosticsData",
                COMPUTE_API,
                params={"sasUriExpirationTimeInMinutes": str(SAS_MINUTES)},
            )
    except AzrdpError as err:
        return BootDiagnostics(error=err.message)
    client = _pipeline(clients.ctx.ca_bundle if hasattr(clients, "ctx") else None)
    result: dict[str, Any] = {}
    errors: list[str] = []
    try:
        url = _check_url(uris.get("consoleScreenshotBlobUri"), "screenshot")
        data = b"".join(_stream(client, url, SCREENSHOT_CAP, "screenshot"))
        if len(data) > SCREENSHOT_CAP:
            raise BlobError(f"The screenshot is larger than azrdp reads ({SCREENSHOT_CAP} bytes).")
        path, fmt = _save_screenshot(data, facts)
        result.update(screenshot_path=path, screenshot_bytes=len(data), screenshot_format=fmt)
    except (BlobError, OSError) as err:
        errors.append(err.message if isinstance(err, AzrdpError) else f"Could not save the screenshot: {err}")
    try:
        url = _check_url(uris.get("serialConsoleLogBlobUri"), "serial log")
        tail = b""
        total = 0
        for chunk in _stream(client, url, SERIAL_CAP, "serial log"):
            total += len(chunk)
            tail = (tail + chunk)[-SERIAL_TAIL_BYTES:]
        text = tail.decode("utf-8", errors="replace")
        lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        result.update(
            serial_tail=tuple(lines[-SERIAL_TAIL_LINES:]),
            serial_bytes=total,
            serial_truncated=total > SERIAL_CAP,
        )
    except BlobError as err:
        errors.append(err.message)
    finally:
        client.close()
    return BootDiagnostics(**result, error="; ".join(errors) or None)
