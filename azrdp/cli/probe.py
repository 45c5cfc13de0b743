"""`azrdp probe`: talk to an RDP endpoint from this machine, without credentials.

The probe itself lives in azrdp.probe (imported inside the command, like azure.*), so this module
is cheap to import for `azrdp --help`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from azrdp.cli.params import (
    CloudOpt,
    DebugOpt,
    IdsOpt,
    NoColorOpt,
    OnlyShowErrorsOpt,
    OutputOpt,
    QueryOpt,
    ResourceGroupOpt,
    SubscriptionOpt,
    VerboseOpt,
    seconds,
)
from azrdp.cli.terminal import Terminal, handle_errors
from azrdp.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from azrdp.probe.target import ProbeTarget

DEFAULT_PORT = 3389
MAX_SAMPLES = 20

TargetArg = Annotated[
    str | None,
    typer.Argument(
        metavar="TARGET",
        help="HOST[:PORT] to probe, or a VM name with -g (or a VM resource ID).",
        show_default=False,
    ),
]
PortOpt = Annotated[
    int | None,
    typer.Option("--port", "-p", min=1, max=65535, help="TCP port. Default: 3389, or the one in HOST:PORT."),
]
SamplesOpt = Annotated[
    int,
    typer.Option("--samples", min=1, max=MAX_SAMPLES, help="Plain TCP connects to measure latency and loss."),
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.1,
        max=60.0,
        callback=seconds(zero=False),
        help="Seconds to wait for each connect and each reply.",
    ),
]
NtlmInfoOpt = Annotated[
    bool,
    typer.Option(
        "--ntlm-info",
        help="With NLA, read the server's NTLM challenge (names, OS build, clock) without credentials.",
    ),
]
PrivateOpt = Annotated[
    bool,
    typer.Option("--private", help="With a VM: probe its private IP instead of its public IP."),
]

_VERDICT = {
    "blocked": ("BLOCKED", "bold red", "RDP cannot work from here"),
    "degraded": ("REACHABLE, WITH WARNINGS", "bold yellow", "RDP answers; see the warnings"),
    "healthy": ("HEALTHY", "bold green", "RDP answers and negotiates security"),
}


def _rtt_text(tcp: Mapping[str, Any]) -> str:
    ok = tcp["samples"] - tcp["failures"]
    text = f"{ok}/{tcp['samples']} connects"
    rtt = tcp.get("rttMs")
    if rtt:
        text += f", RTT {rtt['min']:.2f} / {rtt['median']:.2f} / {rtt['max']:.2f} ms (min/median/max)"
    kinds = tcp.get("failureKinds") or {}
    if kinds:
        text += "; failed: " + ", ".join(f"{n} {k}" for k, n in kinds.items())
    return text


def _security_text(doc: Mapping[str, Any]) -> str | None:
    neg, nla = doc["negotiation"], doc["nla"]
    if neg["failureName"]:
        return f"RDP_NEG_FAILURE {neg['failureName']} ({neg['failureCode']})"
    if not neg["selectedProtocol"]:
        return None
    parts = [f"{neg['selectedProtocol']} selected" + (" (no negotiation data)" if neg["legacy"] else "")]
    if nla["required"]:
        parts.append("NLA required")
    elif nla["offered"]:
        parts.append("NLA offered, not required")
    elif nla["offered"] is False:
        parts.append("no NLA")
    if neg["rdpSecurityAllowed"]:
        parts.append("Standard RDP Security allowed")
    return "; ".join(parts)


def _certificate_lines(cert: Mapping[str, Any]) -> list[str]:
    state = "EXPIRED" if cert["expired"] else "NOT YET VALID" if cert["notYetValid"] else None
    validity = f"{cert['notBefore'][:10]} to {cert['notAfter'][:10]}"
    validity += f" ({state})" if state else f" ({cert['daysRemaining']} days left)"
    extras = [cert["keyType"] + (f" {cert['keySize']}" if cert["keySize"] else "")]
    if cert["selfSigned"]:
        extras.append("self-signed")
    return [f"{cert['subject']}, {validity}", ", ".join(extras), f"SHA-1 {cert['sha1']}"]


def _ntlm_line(ntlm: Mapping[str, Any]) -> str:
    if not ntlm.get("osVersion") and not ntlm.get("netbiosComputer"):
        return f"no challenge: {ntlm.get('error') or ntlm.get('errorCode')}"
    who = ntlm.get("dnsComputer") or ntlm.get("netbiosComputer") or "?"
    os_text = ntlm.get("osName") or ntlm.get("osVersion") or "unknown OS"
    if ntlm.get("osName"):
        os_text += f" ({ntlm['osVersion']})"
    text = f"{who} in {ntlm.get('netbiosDomain') or '?'}, {os_text}, CredSSP v{ntlm.get('credsspVersion')}"
    if ntlm.get("clockSkewSeconds") is not None:
        text += f", clock skew {ntlm['clockSkewSeconds']:+.0f} s"
    return text


def human_view(doc: Mapping[str, Any], console: Console) -> None:
    """A compact panel, verdict first, then the findings with their recommendations."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    label, style, default_reason = _VERDICT[doc["verdict"]]
    findings: Sequence[Mapping[str, Any]] = doc["findings"]
    worst = next((f for f in findings if f["severity"] != "info"), None)
    headline = Text()
    headline.append(label, style=style)
    headline.append(f"  {worst['title'] if worst else default_reason}")

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    target = doc["target"]
    address = target.get("address")
    where = f"{target['host']}:{target['port']}"
    if address and address != target["host"]:
        where += f" ({address})"
    if doc.get("vm"):
        vm = doc["vm"]
        way = "load balancer NAT " + str(vm.get("natRule")) if vm.get("via") == "load-balancer-nat" else None
        where += f"  VM {vm.get('name')} in {vm.get('resourceGroup')}, " + (
            way or f"{vm.get('ipKind', 'public')} IP"
        )
    facts.add_row("Target", Text(where))
    if doc["tcp"]["samples"]:
        facts.add_row("TCP", Text(_rtt_text(doc["tcp"])))
    security = _security_text(doc)
    if security:
        facts.add_row("Security", Text(security))
    if doc["tls"]:
        facts.add_row("TLS", Text(f"{doc['tls']['version']}, {doc['tls']['cipher']}"))
    elif doc.get("tlsError"):
        facts.add_row("TLS", Text(f"failed: {doc['tlsError']}"))
    if doc["certificate"]:
        for index, line in enumerate(_certificate_lines(doc["certificate"])):
            facts.add_row("Certificate" if index == 0 else "", Text(line))
    if doc.get("ntlm"):
        facts.add_row("NTLM", Text(_ntlm_line(doc["ntlm"])))
    facts.add_row("Probe", Text(f"{doc['connections']} connections in {doc['elapsedMs']:.0f} ms"))

    body = Table.grid()
    body.add_row(headline)
    body.add_row(Text(""))
    body.add_row(facts)
    console.print(
        Panel(body, title=Text(f"azrdp probe {where.split()[0]}"), title_align="left", expand=False)
    )

    if findings:
        from azrdp.cli.views import findings_block

        console.print(findings_block(findings))


def table_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    cert = doc.get("certificate") or {}
    return [
        {
            "Target": f"{doc['target']['host']}:{doc['target']['port']}",
            "Verdict": doc["verdict"],
            "Reachable": doc["reachable"],
            "Protocol": doc["negotiation"]["selectedProtocol"] or doc["negotiation"]["failureName"] or "",
            "NlaRequired": doc["nla"]["required"],
            "Tls": (doc.get("tls") or {}).get("version", ""),
            "CertNotAfter": cert.get("notAfter", ""),
            "Blockers": sum(1 for f in doc["findings"] if f["severity"] == "blocker"),
            "Warnings": sum(1 for f in doc["findings"] if f["severity"] == "warning"),
        }
    ]


def _target(
    target: str | None,
    resource_group: str | None,
    ids: list[str] | None,
    port: int | None,
    private: bool,
    subscription: str | None,
    cloud: str | None,
) -> ProbeTarget:
    from azrdp.cli.targeting import group_from_env, is_resource_id
    from azrdp.probe.target import host_target, resolve_vm

    is_vm_id = is_resource_id(target)
    if resource_group and not ids and not is_vm_id and target and group_from_env(resource_group):
        # AZURE_DEFAULTS_GROUP must not turn `azrdp probe 10.0.0.4` into a VM lookup.
        looks_like_host = "." in target or ":" in target or target.lower() == "localhost"
        resource_group = None if looks_like_host else resource_group
    if (ids or is_vm_id) and resource_group and group_from_env(resource_group):
        resource_group = None
    if ids or resource_group or is_vm_id:
        if ids and target:
            raise UsageError(
                f"Both --ids and the target {target!r} were given.", fix="Pass either --ids or VM -g RG."
            )
        if (ids or is_vm_id) and resource_group:
            raise UsageError(
                "--ids cannot be combined with -g/--resource-group.",
                "A resource ID already names the group.",
                fix="Pass either --ids ID or VM -g RG.",
            )
        if not ids and not is_vm_id and not target:
            raise UsageError("A VM name is missing.", fix="Pass the VM name: azrdp probe VM -g RG.")
        return resolve_vm(
            name=None if (ids or is_vm_id) else target,
            resource_group=resource_group,
            ids=ids or ([target] if target and is_vm_id else None),
            subscription=subscription,
            cloud=cloud,
            private=private,
            port=port,
        )
    if private:
        raise UsageError(
            "--private needs a VM (VM -g RG or --ids).", fix="Drop --private to probe HOST directly."
        )
    if not target:
        raise UsageError(
            "Nothing to probe.", fix="Pass HOST[:PORT], a VM name with -g RG, or --ids with a VM resource ID."
        )
    return host_target(target, port, DEFAULT_PORT)


def register(app: typer.Typer) -> None:
    @app.command("probe")
    @handle_errors
    def probe_command(
        target: TargetArg = None,
        resource_group: ResourceGroupOpt = None,
        ids: IdsOpt = None,
        port: PortOpt = None,
        private: PrivateOpt = False,
        samples: SamplesOpt = 5,
        timeout: TimeoutOpt = 5.0,
        ntlm_info: NtlmInfoOpt = False,
        subscription: SubscriptionOpt = None,
        cloud: CloudOpt = None,
        output: OutputOpt = None,
        query: QueryOpt = None,
        verbose: VerboseOpt = False,
        debug: DebugOpt = False,
        only_show_errors: OnlyShowErrorsOpt = False,
        no_color: NoColorOpt = False,
    ) -> None:
        """Probe an RDP endpoint from here: TCP, security negotiation, TLS, certificate, NLA.

        Sends no user name, password or cookie, and never tries to sign in.

        Opens --samples connections plus at most three negotiation connections; exit code 4 on a blocker.

        Examples:
          azrdp probe 20.61.10.7
          azrdp probe myvm.westeurope.cloudapp.azure.com:3390 --ntlm-info
          azrdp probe myvm -g rg-prod --private -o json
        """
        from azrdp.cli.render import emit
        from azrdp.probe.engine import probe

        term = Terminal(no_color=no_color, verbose=verbose, debug=debug, only_show_errors=only_show_errors)
        resolved = _target(
            target, resource_group, ids, port, private, subscription, cloud.value if cloud else None
        )
        with term.status(f"Probing {resolved.host}:{resolved.port}") as update:
            doc, findings = probe(
                resolved.host,
                resolved.port,
                samples=samples,
                timeout=timeout,
                ntlm_info=ntlm_info,
                expected_names=resolved.expected_names,
                vm=resolved.vm,
                progress=update,
            )
        emit(doc, term, output, query, human=human_view, table_rows=table_rows)
        if any(f.is_blocker for f in findings):
            raise typer.Exit(int(ExitCode.BLOCKERS))
