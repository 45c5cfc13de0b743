"""azrdp: find out why a Windows VM on Azure refuses Remote Desktop, explain it, fix it safely.

The Python API returns the same result documents as `azrdp ... -o json`:

    import azrdp
    doc = azrdp.check("web01", "rg-web", source_ip="203.0.113.7")
    doc = azrdp.diagnose("web01", "rg-web")
    doc = azrdp.repair("web01", "rg-web", yes=True)
    doc = azrdp.probe("web01.example.com")
    doc = azrdp.explain("0x904", extended="0x7")

Errors are raised as azrdp.errors.AzrdpError subclasses (each with an exit code). Importing this
package is cheap: nothing here touches the network or imports azure.*; each function imports what
it needs when called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "check", "diagnose", "explain", "probe", "repair"]


def _targets(
    vm: str | None, resource_group: str | None, ids: Sequence[str] | None, all_vms: bool, tag: str | None
) -> Any:
    from azrdp.targets import parse_targets

    return parse_targets(vm=vm, resource_group=resource_group, ids=ids, all_vms=all_vms, tag=tag)


def _check_options(port: int, source_ip: str | None, protocol: str) -> Any:
    from azrdp.engine.check import CheckOptions
    from azrdp.targets import validate_port, validate_protocol, validate_source

    return CheckOptions(
        port=validate_port(port), source_ip=validate_source(source_ip), protocol=validate_protocol(protocol)
    )


def check(
    vm: str | None = None,
    resource_group: str | None = None,
    *,
    ids: Sequence[str] | None = None,
    all_vms: bool = False,
    tag: str | None = None,
    subscription: str | None = None,
    port: int = 3389,
    source_ip: str | None = None,
    protocol: str = "Tcp",
) -> dict[str, Any]:
    """Control-plane pre-connection check of one VM, a group (`vm=None`) or the subscription."""
    from azrdp.engine.check import run_check

    targets = _targets(vm, resource_group, ids, all_vms, tag)
    result = run_check(targets, _check_options(port, source_ip, protocol), subscription=subscription)
    return dict(result.to_doc())


def diagnose(
    vm: str | None = None,
    resource_group: str | None = None,
    *,
    ids: Sequence[str] | None = None,
    all_vms: bool = False,
    tag: str | None = None,
    subscription: str | None = None,
    port: int = 3389,
    source_ip: str | None = None,
) -> dict[str, Any]:
    """The control-plane check, then one in-guest Run Command per VM."""
    from azrdp.engine.diagnose import DiagnoseOptions, run_diagnose

    targets = _targets(vm, resource_group, ids, all_vms, tag)
    options = DiagnoseOptions(check=_check_options(port, source_ip, "Tcp"))
    return dict(run_diagnose(targets, options, subscription=subscription).to_doc())


def repair(
    vm: str | None = None,
    resource_group: str | None = None,
    *,
    ids: Sequence[str] | None = None,
    subscription: str | None = None,
    yes: bool = False,
    dry_run: bool = False,
    port: int = 3389,
    source_ip: str | None = None,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
) -> dict[str, Any]:
    """Diagnose, repair what was proven broken (backed up), verify. Needs yes=True or dry_run=True."""
    from azrdp.engine.repair import RepairOptions, run_repair
    from azrdp.errors import UsageError
    from azrdp.targets import validate_port, validate_source

    if not (yes or dry_run):
        raise UsageError(
            "repair() changes VMs and needs an explicit decision.",
            fix="Pass yes=True to apply, or dry_run=True to get the plan.",
        )
    targets = _targets(vm, resource_group, ids, False, None)
    options = RepairOptions(
        port=validate_port(port),
        source_ip=validate_source(source_ip),
        only=tuple(only),
        skip=tuple(skip),
        dry_run=dry_run,
    )
    return dict(run_repair(targets, options, subscription=subscription).to_doc())


def probe(host: str, port: int = 3389, *, samples: int = 5, timeout: float = 5.0) -> dict[str, Any]:
    """Client-side RDP probe of HOST:PORT (TCP, X.224 negotiation, TLS certificate, NLA)."""
    from azrdp.probe.engine import probe as run_probe
    from azrdp.targets import validate_port

    doc, _ = run_probe(host, validate_port(port), samples=samples, timeout=timeout)
    return doc


def explain(code: str, extended: str | None = None) -> dict[str, Any]:
    """What an RDP error code (and its extended reason) means and what to run next."""
    from azrdp.codes import explain as explain_codes
    from azrdp.codes import explanation_doc

    return explanation_doc(explain_codes(code, extended))
