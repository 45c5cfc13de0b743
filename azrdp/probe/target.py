"""Where to probe: HOST[:PORT] parsing, and a VM's public or private IP through the control plane.

VM resolution goes through azrdp.azure (imported inside the function), so importing this module
never loads the Azure SDK.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from azrdp.errors import UsageError

_HOST_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


@dataclass(frozen=True)
class ProbeTarget:
    host: str
    port: int
    # The VM the address came from, when resolved through Azure (name, resourceGroup, id, ipKind ...).
    vm: dict[str, Any] | None = None
    expected_names: tuple[str, ...] = field(default_factory=tuple)


def _port(text: str, source: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise UsageError(
            f"The port {text!r} in {source} is not valid.",
            "A port is a number from 1 to 65535.",
            "Use HOST:PORT, e.g. 10.0.0.4:3389, or --port.",
        )
    return int(text)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_HOST_LABEL.match(label) for label in name.split("."))


def parse_host_port(text: str) -> tuple[str, int | None]:
    """'host', 'host:port', '[v6]:port' or a bare IPv6 address -> (host, port or None)."""
    value = text.strip()
    host, port = value, None
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not value[end + 1 :].startswith(":")):
            raise UsageError(f"The target {text!r} is not valid.", fix="Write IPv6 as [2001:db8::4]:3389.")
        host = value[1:end]
        rest = value[end + 2 :]
        if value[end + 1 :]:
            port = _port(rest, repr(text))
    elif value.count(":") == 1:
        host, port_text = value.split(":")
        port = _port(port_text, repr(text))
    if not host or not _valid_host(host):
        raise UsageError(
            f"The target {text!r} is not a host name or IP address.",
            fix="Pass HOST[:PORT], or a VM name with -g RG, or --ids with the VM's resource ID.",
        )
    return host, port


def host_target(text: str, port_option: int | None, default_port: int) -> ProbeTarget:
    host, port = parse_host_port(text)
    if port is not None and port_option is not None and port != port_option:
        raise UsageError(
            f"The target {text!r} names port {port} but --port says {port_option}.",
            fix="Give the port once.",
        )
    return ProbeTarget(host=host, port=port or port_option or default_port)


def resolve_vm(
    *,
    name: str | None,
    resource_group: str | None,
    ids: list[str] | None,
    subscription: str | None,
    cloud: str | None,
    private: bool,
    port: int,
) -> ProbeTarget:
    """Look the VM up in Azure and return its public (or, with `private`, private) IP."""
    raise NotImplementedError
