"""The emulator: ARM over HTTPS on 127.0.0.1, plus a managed-identity endpoint.

Request pipeline (each in the connection's own thread): latency -> route -> injected fault -> bearer
token (audience, expiry) -> api-version -> subscription -> throttle -> settle due LROs -> handler
(under the store lock) -> record. JSON is rendered under the lock, so a body never mixes two states
of a resource.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import random
import re
import socket
import ssl
import struct
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from azrdp.emulator import (
    platform,
    routes_authorization,
    routes_compute,
    routes_health,
    routes_network,
    routes_paths,
    routes_resources,
)
from azrdp.emulator.apiversions import check_api_version
from azrdp.emulator.authz import (
    EMULATOR_CLIENT_ID,
    EMULATOR_TENANT,
    ResetConnection,
    check_token,
    fault_error,
)
from azrdp.emulator.faults import Fault, FaultPlan
from azrdp.emulator.identity import IdentityServer
from azrdp.emulator.lro import OperationBook
from azrdp.emulator.requestlog import RequestLog, RequestRecord
from azrdp.emulator.scenario import Scenario, from_document, populate, resolve
from azrdp.emulator.store import ResourceStore
from azrdp.emulator.throttle import Throttle, ThrottleConfig
from azrdp.emulator.tls import tls_material
from azrdp.emulator.wire import JSON, ArmError, Request, Response, Route

NO_GUEST_HANDLER = "azrdp emulator: no guest handler knows this script"


@dataclass
class RunCommandOutput:
    stdout: str
    stderr: str = ""
    duration_s: float | None = None  # None: the emulator's runcommand_seconds


GuestHandler = Callable[[dict[str, Any], dict[str, Any]], RunCommandOutput]


def default_guest_handler() -> GuestHandler:
    """The Windows model's handler (`azrdp.emulator.windows.runcommand`) when present, else a plain StdErr."""
    try:
        module = importlib.import_module("azrdp.emulator.windows.runcommand")
    except ImportError:
        module = None
    handler = getattr(module, "handle_run_command", None)
    if callable(handler):
        return handler  # type: ignore[no-any-return]
    return unknown_script_handler


def unknown_script_handler(vm: dict[str, Any], body: dict[str, Any]) -> RunCommandOutput:
    """The fallback guest: knows no script, says so on StdErr."""
    return RunCommandOutput(stdout="", stderr=NO_GUEST_HANDLER)


class Emulator:
    """A local Azure Resource Manager the real SDK talks to. See docs/emulator.md."""

    def __init__(
        self,
        scenario: str | Path | dict[str, Any] | Scenario = "healthy",
        *,
        latency_ms: float = 0,
        jitter_ms: float = 0,
        page_size: int = 100,
        faults: str | Iterable[Fault] | None = None,
        request_log: str | Path | None = None,
        runcommand_seconds: float = 0.2,
        lro_seconds: float = 0.05,
        throttle: bool | ThrottleConfig = True,
        seed: int = 0,
        port: int = 0,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.store = ResourceStore()
        # Loading builds hundreds of thousands of dicts at once: generational GC passes over them
        # would cost more than the load itself, and none of it is garbage yet.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self.scenario = resolve(scenario, seed=seed)
            populate(self.store, self.scenario)
        finally:
            if gc_was_enabled:
                gc.enable()
        self.subscription_id = self.scenario.subscription_id
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.page_size = page_size
        self.runcommand_seconds = runcommand_seconds
        self.lro_seconds = lro_seconds
        self.port = port
        self.ops = OperationBook(self.store.lock)
        if throttle is True:
            throttle_config: ThrottleConfig | None = ThrottleConfig()
        elif throttle is False:
            throttle_config = None
        else:
            throttle_config = throttle
        self.throttle = Throttle(throttle_config)
        self.faults = FaultPlan.of(faults, seed)
        self._log = RequestLog(request_log)
        self._rng = random.Random(seed)  # noqa: S311 (reproducible jitter, not crypto)
        self._rng_lock = threading.Lock()
        self.guest_handler: GuestHandler = default_guest_handler()
        self._routes: list[Route] = [
            *routes_compute.routes(),
            *routes_network.routes(),
            *routes_resources.routes(),
            *routes_paths.routes(),
            *routes_health.routes(),
            *routes_authorization.routes(),
            *platform.routes(),
        ]
        self._arm: _ArmServer | None = None
        self._blobs: platform.BlobServer | None = None
        self._identity: IdentityServer | None = None
        self._threads: list[threading.Thread] = []
        self._op_counter = 0

    # lifecycle -------------------------------------------------------------------------------

    def start(self) -> Emulator:
        if self._arm is not None:
            return self
        material = tls_material()
        self.ca_path = str(material.ca_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(material.cert_path), str(material.key_path))
        self._arm = _ArmServer(self, context, self.port)
        self._identity = IdentityServer(EMULATOR_TENANT, EMULATOR_CLIENT_ID)
        self._log.open()
        self._blobs, blob_thread = platform.start_blob_server(self, context)
        self._threads.append(blob_thread)
        for server in (self._arm, self._identity):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="azrdp-emulator", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self._arm, self._identity, self._blobs):
            if server is not None:
                server.shutdown()
                server.server_close()
        if self._arm is not None:
            self._arm.close_connections()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self._arm = None
        self._identity = None
        self._blobs = None
        self._log.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # what clients need -----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        if self._arm is None:
            raise RuntimeError("the emulator is not started")
        return f"https://127.0.0.1:{self._arm.server_address[1]}"

    @property
    def identity_endpoint(self) -> str:
        if self._identity is None:
            raise RuntimeError("the emulator is not started")
        return self._identity.endpoint

    @property
    def identity_header(self) -> str:
        if self._identity is None:
            raise RuntimeError("the emulator is not started")
        return self._identity.secret

    @property
    def blobs(self) -> platform.BlobServer:
        """The storage host serving boot diagnostics blobs (its `requests` record header names only)."""
        if self._blobs is None:
            raise RuntimeError("the emulator is not started")
        return self._blobs

    @property
    def tokens_issued(self) -> int:
        return self._identity.issued if self._identity is not None else 0

    def exports(self) -> dict[str, str]:
        return {
            "AZRDP_ARM_ENDPOINT": self.endpoint,
            "AZRDP_CA_BUNDLE": self.ca_path,
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.identity_header,
            "AZURE_SUBSCRIPTION_ID": self.subscription_id,
            "AZURE_TOKEN_CREDENTIALS": "managedidentitycredential",
            # The emulator finishes LROs in tens of milliseconds; azrdp's production default polls every 2 s.
            "AZRDP_POLLING_INTERVAL": "0.05",
        }

    @property
    def requests(self) -> list[RequestRecord]:
        return self._log.records()

    def clear_requests(self) -> None:
        self._log.clear()

    # test helpers ------------------------------------------------------------------------------

    def add_resources(self, resources: list[dict[str, Any]]) -> None:
        """Load more ARM resources into a running emulator, validated and normalised like a scenario's."""
        extra = from_document(
            {
                "subscriptionId": self.subscription_id,
                "location": self.scenario.location,
                "resources": resources,
            },
            source="add_resources",
        )
        populate(self.store, extra)

    def vm(self, resource_group: str, name: str) -> dict[str, Any] | None:
        """The stored VM dict (live: hold `store.lock` while reading or changing it)."""
        return self.store.get(
            f"/subscriptions/{self.subscription_id}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{name}"
        )

    def set_vm_power(self, resource_group: str, name: str, state: str) -> None:
        from azrdp.emulator.vmstate import set_power_state

        with self.store.lock:
            vm = self.vm(resource_group, name)
            if vm is None:
                raise KeyError(f"no VM {resource_group}/{name} in the scenario")
            set_power_state(vm, state)

    def set_vm_agent(self, resource_group: str, name: str, mode: str) -> None:
        """`ready`, `notReady` or `none` (never reported)."""
        from azrdp.emulator.vmstate import set_agent

        with self.store.lock:
            vm = self.vm(resource_group, name)
            if vm is None:
                raise KeyError(f"no VM {resource_group}/{name} in the scenario")
            set_agent(vm, mode)

    # used by the routes ----------------------------------------------------------------------

    def require_group(self, subscription: str, resource_group: str) -> None:
        if self.store.resource_group(subscription, resource_group) is None:
            raise ArmError(
                404, "ResourceGroupNotFound", f"Resource group '{resource_group}' could not be found."
            )

    def call_guest_handler(self, vm: dict[str, Any], body: dict[str, Any]) -> RunCommandOutput:
        with self.store.lock:
            vm.setdefault("guest", {})
            return self.guest_handler(vm, body)

    def ops_counter(self) -> int:
        with self.store.lock:
            self._op_counter += 1
            return self._op_counter

    # the pipeline ----------------------------------------------------------------------------

    def delay(self) -> None:
        if self.latency_ms <= 0 and self.jitter_ms <= 0:
            return
        with self._rng_lock:
            jitter = self._rng.uniform(0, self.jitter_ms) if self.jitter_ms > 0 else 0.0
        time.sleep((self.latency_ms + jitter) / 1000.0)

    def record(self, record: RequestRecord) -> None:
        self._log.add(record)

    def _match(self, req: Request) -> tuple[Route, re.Match[str]]:
        path_matched = False
        for candidate in self._routes:
            match = candidate.pattern.match(req.path)
            if match is None:
                continue
            path_matched = True
            if candidate.method == req.method:
                return candidate, match
        if path_matched:
            raise ArmError(
                405,
                "MethodNotAllowed",
                f"The requested resource does not support http method '{req.method}'.",
            )
        raise ArmError(
            404,
            "InvalidResourceType" if "/providers/" in req.path.lower() else "NotFound",
            f"The emulator has no route for {req.method} {req.path}.",
        )

    def handle(self, req: Request) -> Response:
        """Route -> injected fault -> bearer token -> api-version -> subscription -> throttle -> handler."""
        number = req.number = self.faults.count()
        matched, match = self._match(req)
        action = matched.action_for(match)
        query = "&".join(f"{k}={v}" for k, v in req.query.items())
        fault = self.faults.answer(number, req.method, req.path, action, query)
        if fault is not None:
            if fault.kind == "reset":
                raise ResetConnection()
            raise fault_error(fault, self, req, matched, action)
        if not matched.anonymous:
            check_token(req.headers.get("authorization", ""))
        resource_type = matched.resource_type or action.split("/")[1]
        check_api_version(
            matched.api_line, req.query.get("api-version"), resource_type, self.scenario.location
        )
        subscription = match.groupdict().get("sub") or ""
        if not subscription:  # tenant-level route (the subscription list): the scenario's bucket
            subscription = self.subscription_id
        elif subscription.lower() not in self.store.subscriptions():
            raise ArmError(
                404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found."
            )
        kind = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(req.method, "writes")
        allowed, remaining, retry_after = self.throttle.take(subscription, kind)
        limit_header = f"x-ms-ratelimit-remaining-subscription-{kind}"
        if not allowed:
            raise ArmError(
                429,
                "SubscriptionRequestsThrottled",
                f"Number of '{kind[:-1]}' requests for subscription '{subscription}' actor "
                f"'{EMULATOR_CLIENT_ID}' exceeded. Please try again after '{retry_after}' seconds after the "
                "first request. The throttled requests are counted towards the subscription limit.",
                headers={"Retry-After": str(retry_after), limit_header: "0"},
            )
        self.ops.settle()
        with self.store.lock:
            response = matched.handler(self, req, match)
            if response.body is not None and not isinstance(response.body, bytes):
                response.body = json.dumps(response.body, separators=(",", ":")).encode()
        response.headers[limit_header] = str(remaining)
        return response


class _ArmServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, emulator: Emulator, context: ssl.SSLContext, port: int) -> None:
        self.emulator = emulator
        self.context = context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _ArmHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the connection's thread, so one slow client never blocks accept().
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with self._connections_lock:
            self._connections.add(tls)
        try:
            super().finish_request(tls, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(tls)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects are normal (pollers, resets); never print tracebacks with request data."""


class _ArmHandler(BaseHTTPRequestHandler):
    server: _ArmServer
    protocol_version = "HTTP/1.1"
    server_version = "azrdp-emulator"
    sys_version = ""
    timeout = 120
    # Headers and body go out as two writes; with Nagle on, delayed ACKs would add 40 ms to each.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request log records requests (without headers, so never a token)."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        emu = self.server.emulator
        started = time.time()
        clock = time.perf_counter()
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        req = Request(
            method=self.command,
            path=unquote(url.path),
            query={k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()},
            body=body,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        emu.delay()

        def record(status: int) -> None:
            # Recorded before the reply goes out, so a client that got its answer always finds it logged.
            emu.record(
                RequestRecord(
                    method=req.method,
                    path=req.path,
                    query=url.query,
                    status=status,
                    started=started,
                    duration_ms=round((time.perf_counter() - clock) * 1000.0, 3),
                )
            )

        try:
            response = emu.handle(req)
        except ResetConnection:
            record(0)
            self._reset()
            return
        except ArmError as error:
            response = error.response()
            response.body = json.dumps(response.body).encode()
        except Exception:
            # An emulator bug: answer as ARM would (500) and show the traceback, which holds no headers.
            traceback.print_exc()
            response = ArmError(
                500, "InternalServerError", "The emulator failed to handle this request."
            ).response()
            response.body = json.dumps(response.body).encode()
        record(response.status)
        self._write(response, req)

    def _write(self, response: Response, req: Request) -> None:
        body = response.body if isinstance(response.body, bytes) else b""
        self.send_response(response.status)
        request_id = str(uuid.uuid4())
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-ms-request-id", request_id)
        self.send_header("x-ms-correlation-request-id", req.headers.get("x-ms-client-request-id", request_id))
        self.send_header("x-ms-routing-request-id", f"LOCAL:{request_id}")
        for name, value in response.headers.items():
            self.send_header(name, value)
        if body:
            self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout turns close() into a TCP RST: the client sees "connection reset".
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.close()
