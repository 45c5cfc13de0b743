"""What collector.ps1 would print on a machine in this state: the facts, rendered from the model.

Built with azrdp.guest.facts' own dataclasses, so the schema has one definition. Everything here
reads state the way the script reads it (the same caps and selection rules, the same formats:
DWORDs as .NET's signed Int32, Binary as upper-case hex, SDDL as Windows prints it) and decides
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from azrdp.emulator.windows import state as w
from azrdp.emulator.windows.access import allows
from azrdp.guest import facts as gf

T = TypeVar("T")
LIMITS = gf.LIMITS


def _text(value: str | None) -> str | None:
    return gf.limit_text(value, LIMITS["text"])


def reg_state(value: w.RegValue | None) -> list[Any] | None:
    """[kind, data] as .NET's RegistryKey.GetValue gives it (and the executor records it)."""
    if value is None:
        return None
    data = value.data
    if value.kind == "DWord":
        data = data - 0x100000000 if data >= 0x80000000 else data
    elif value.kind == "QWord":
        data = data - 0x10000000000000000 if data >= 0x8000000000000000 else data
    elif value.kind == "Binary":
        data = bytes(data).hex().upper()
    elif value.kind == "MultiString":
        data = list(data)
    elif value.kind == "None":
        # REG_NONE: GetValueKind answers Unknown (its number, 0), GetValue the bytes
        # (referencesource RegistryValueKind.cs, RegistryKey.InternalGetValue).
        return [gf.REG_UNKNOWN, bytes(data).hex().upper()]
    return [value.kind, data]


def sddl_of(sd: Any) -> str:
    from azrdp.guest.sddl import owner_and_dacl

    return str(owner_and_dacl(sd).text())


def readable_by_system(sd: Any, kind: str = "file") -> bool:
    return allows(sd, w.SYSTEM_TOKEN, w.READ_CONTROL, kind)


def collect(m: w.Machine, port: int) -> gf.Facts:
    errors: list[gf.SectionError] = []

    def section(name: str, build: Callable[[], T]) -> T | None:
        if name in m.failing_sections:
            if len(errors) < LIMITS["errors"]:
                errors.append(gf.SectionError(name, f"Simulated failure reading {name}: Access is denied."))
            return None
        try:
            return build()
        except w.ApiError as exc:
            if len(errors) < LIMITS["errors"]:
                errors.append(gf.SectionError(name, gf.limit_text(str(exc), LIMITS["error"])))
            return None

    listener_port = m.registry.number(w.RDPTCP, "PortNumber")
    if listener_port is None or not 1 <= listener_port <= 65535:
        listener_port = port
    reg = section("reg", lambda: _registry(m))
    ts = section("ts", lambda: _ts(m))
    return gf.Facts(
        os=section("os", lambda: _os(m)),
        reg=reg[0] if reg else None,
        reg_keys=reg[1] if reg else (),
        ts=ts,
        services=section("svc", lambda: _services(m)),
        listeners=section("lsn", lambda: _listeners(m, listener_port, port)),
        certs=section("cert", lambda: _certs(m, ts)),
        machine_keys=section("mk", lambda: _folder(m)),
        firewall=section("fw", lambda: _firewall(m, listener_port)),
        events=section("evt", lambda: _events(m)),
        disk=section("disk", lambda: gf.DiskFacts(m.drive, m.disk_free, m.disk_size)),
        azrdp=section("azr", lambda: _azrdp(m)),
        errors=tuple(errors),
    )


def _os(m: w.Machine) -> gf.OsFacts:
    return gf.OsFacts(
        m.version, m.build, m.ps_version, m.domain, gf.format_time(m.boot), m.machine_guid, m.tspkg
    )


def _registry(m: w.Machine) -> tuple[tuple[gf.RegEntry, ...], tuple[str, ...]]:
    entries: list[gf.RegEntry] = []
    present: list[str] = []
    for alias, path in gf.REG_KEYS.items():
        if m.registry.key(path) is None:
            continue
        present.append(alias)
        for name in gf.REG_READS[alias]:
            state = reg_state(m.registry.get(path, name))
            if state is not None:
                data = tuple(state[1]) if isinstance(state[1], list) else state[1]
                entries.append(gf.RegEntry(alias, name, state[0], data))
    return tuple(entries), tuple(present)


def _ts(m: w.Machine) -> gf.TsGeneral:
    src = m.policy_sources
    pin = m.pin()
    return gf.TsGeneral(
        src.get("securityLayer", 2),
        src.get("userAuthentication", 2),
        src.get("minEncryptionLevel", 2),
        pin or m.ts_cert,
        m.hash_type if pin else 1,
        m.ts_mode,
    )


def _services(m: w.Machine) -> tuple[gf.ServiceFacts, ...]:
    out = []
    for name in gf.SERVICE_NAMES:
        s = m.service(name)
        if s is None:
            out.append(gf.ServiceFacts(name, state="NotFound"))
            continue
        dependents = tuple(d.name for d in m.dependents(s.name))[: LIMITS["dependents"]]
        out.append(
            gf.ServiceFacts(
                s.name,
                _text(s.display),
                s.state,
                s.start,
                s.delayed,
                _text(s.account),
                s.exit_code,
                s.pid,
                dependents,
            )
        )
    return tuple(out)


def _listeners(m: w.Machine, listener_port: int, port: int) -> tuple[gf.PortOwner, ...]:
    out = []
    for p in dict.fromkeys((listener_port, port)):
        if p in m.listeners:
            pid, name = m.listeners[p]
            out.append(gf.PortOwner(p, pid, _text(name)))
        if m.listening() == p:
            ts = m.service("TermService")
            assert ts is not None
            out.append(gf.PortOwner(p, ts.pid, "svchost"))
    return tuple(out)


def _certs(m: w.Machine, ts: gf.TsGeneral | None) -> gf.CertStoreFacts:
    in_use = ts.cert_hash if ts is not None else ""
    chosen: list[tuple[str, w.Cert]] = []
    picked: set[str] = set()
    for wanted in (in_use or "", m.pin()):
        if not wanted or wanted in picked:
            continue
        for store, entries in (("rd", m.rd_store), ("my", m.my_store)):
            if wanted in entries:
                chosen.append((store, entries[wanted]))
                picked.add(wanted)
                break
    for cert in sorted(m.rd_store.values(), key=lambda c: c.not_after, reverse=True):
        if len(chosen) >= LIMITS["certs"]:
            break
        if cert.thumbprint not in picked:
            chosen.append(("rd", cert))
            picked.add(cert.thumbprint)
    certs = tuple(
        gf.CertFacts(
            store,
            cert.thumbprint,
            gf.format_time(cert.not_before),
            gf.format_time(cert.not_after),
            _text(cert.subject),
            _text(cert.issuer),
            cert.eku[: LIMITS["eku"]],
            cert.key is not None,
            _key(m, cert.key) if cert.key is not None else None,
        )
        for store, cert in chosen
    )
    return gf.CertStoreFacts(
        len(m.rd_store), len(m.my_store), certs, _store_sddl(m, w.RD_STORE), _store_sddl(m, w.RD_CERTIFICATES)
    )


def _store_sddl(m: w.Machine, path: str) -> str | None:
    key = m.registry.key(path)
    if key is None or key.sd is None:
        return None
    if not readable_by_system(key.sd, "key"):
        raise w.ApiError(f"Requested registry access is not allowed ({path}).")
    return sddl_of(key.sd)


def fips_policy(m: w.Machine) -> bool:
    """FIPSAlgorithmPolicy Enabled set: .NET Framework before 4.8 (and apps targeting it, as
    powershell.exe does) then refuses MD5 (Learn: "Retargeting changes for migration to .NET
    Framework 4.8.x", MD5CryptoServiceProvider)."""
    value = m.registry.get(gf.REG_KEYS["fips"], "Enabled")
    return value is not None and value.kind == "DWord" and int(value.data) != 0


def _key(m: w.Machine, key: w.KeyProv) -> gf.KeyFacts:
    file_name: str | None = key.cng_file if key.prov_type == 0 else m.capi_file_name(key.container)
    item = m.key_file(key)
    if key.prov_type == 0 and item is None:
        # CngKey.Open fails when the key is gone: the file name is then unknown.
        return gf.KeyFacts(
            0, _text(key.container), _text(key.provider), None, None, None, None, "Keyset does not exist"
        )
    sddl = error = None
    opens: int | None = None
    # SYSTEM opening the key: NTE_BAD_KEYSET (0x80090016) when it is gone or SYSTEM is shut out,
    # NTE_BAD_KEY_STATE (0x8009000B) when the container is damaged.
    if item is None or not allows(item.sd, w.SYSTEM_TOKEN, w.FILE_READ):
        opens = 0x80090016 - 0x100000000
    elif item.corrupt:
        opens = 0x8009000B - 0x100000000
    else:
        opens = 0
    if key.prov_type != 0 and fips_policy(m) and opens != 0:
        # MD5 refused: the collector learns the file's name only from a key SYSTEM opens.
        return gf.KeyFacts(
            key.prov_type, _text(key.container), _text(key.provider), None, None, None, opens, None
        )
    if item is not None:
        if readable_by_system(item.sd):
            sddl = sddl_of(item.sd)
        else:
            error = "Attempted to perform an unauthorized operation."
    return gf.KeyFacts(
        key.prov_type,
        _text(key.container),
        _text(key.provider),
        file_name,
        item is not None,
        sddl,
        opens,
        error,
    )


def _folder(m: w.Machine) -> gf.FolderFacts:
    folder = m.file(w.MACHINEKEYS)
    if folder is None:
        raise w.ApiError(f"Could not find a part of the path '{w.MACHINEKEYS}'.")
    if not readable_by_system(folder.sd):
        raise w.ApiError("Attempted to perform an unauthorized operation.")
    return gf.FolderFacts(sddl_of(folder.sd))


def _rule(r: w.Rule) -> gf.RuleFacts:
    return gf.RuleFacts(
        _text(r.name),
        r.enabled,
        r.direction,
        r.action,
        r.protocol,
        gf.limit_text(r.local_ports, LIMITS["ports"]),
        _text(r.remote),
        _text(r.program),
        _text(r.service),
        _text(r.profile),
        _text(r.group),
        "GroupPolicy" if r.store == "GroupPolicy" else "Local",
    )


def _active_rules(m: w.Machine) -> list[w.Rule]:
    """The ActiveStore: Group Policy rules, and local ones unless every applicable policy ignores them."""
    local_ok = all(p.effective_local_rules != "False" for p in m.profiles.values())
    return [r for r in m.rules if r.store == "GroupPolicy" or local_ok]


def _firewall(m: w.Machine, listener_port: int) -> gf.FirewallFacts:
    profiles = tuple(
        gf.ProfileFacts(
            p.name,
            p.enabled,
            {"True": True, "False": False}.get(p.effective_inbound),
            {"True": True, "False": False}.get(p.effective_local_rules),
            p.inbound,
        )
        for p in m.profiles.values()
    )
    active = _active_rules(m)
    rules = [_rule(r) for name in gf.RDP_RULES for r in active if r.name == name][: len(gf.RDP_RULES)]
    # The rule for the listener's port first, then by name.
    own = gf.custom_rule_name(listener_port)
    custom = sorted(
        (r for r in active if r.name.startswith(gf.CUSTOM_RULE_PREFIX)), key=lambda r: (r.name != own, r.name)
    )
    rules += [_rule(r) for r in custom[: LIMITS["customRules"]]]
    candidates = []
    for r in active:
        if not (
            r.enabled and r.direction == "Inbound" and r.action == "Block" and r.protocol in ("TCP", "Any")
        ):
            continue
        ports = r.local_ports
        rank = 3
        if ports == "Any":
            rank = 0
        elif str(listener_port) in ports.split(","):
            rank = 1
        elif "-" in ports:
            rank = 2
        candidates.append((rank, r))
    candidates.sort(key=lambda pair: pair[0])
    blocks = tuple(_rule(r) for _, r in candidates[: LIMITS["blocks"]])
    categories = tuple(dict.fromkeys(m.active))
    return gf.FirewallFacts(profiles, categories, tuple(rules), blocks, len(candidates))


def _events(m: w.Machine) -> tuple[gf.EventFacts, ...]:
    out = []
    for event_id in gf.EVENT_IDS:
        # Get-WinEvent reads newest first.
        found = sorted(m.count_events(event_id, gf.EVENT_DAYS), key=lambda e: e.time, reverse=True)
        if not found:
            continue
        sources: list[str] = []
        if event_id in gf.SCM_EVENTS:
            for event in found:
                name = _text(event.source) or ""
                if name and name not in sources and len(sources) < LIMITS["sources"]:
                    sources.append(name)
        out.append(
            gf.EventFacts(
                event_id, min(len(found), LIMITS["events"]), tuple(sources), gf.format_time(found[0].time)
            )
        )
    return tuple(out)


def _azrdp(m: w.Machine) -> gf.AzrdpFacts:
    data = m.azrdp
    if not data.exists:
        return gf.AzrdpFacts()
    runs: list[gf.RunFacts] = []
    for run_id in reversed(data.order):
        if len(runs) >= LIMITS["runs"]:
            break
        run = data.runs[run_id]["run"]
        runs.append(gf.RunFacts(run["id"], run["t"], run["boot"], run["st"], bool(run["rb"]), run["u"]))
    lock = data.lock
    if lock is not None and lock.torn:
        # ConvertFrom-Json of an empty file (the section fails, as the script's does).
        raise w.ApiError("Cannot bind argument to parameter 'InputObject' because it is an empty string.")
    return gf.AzrdpFacts(
        data.owner,
        tuple(runs),
        lock.run if lock else None,
        gf.format_time(lock.until) if lock else None,
    )
