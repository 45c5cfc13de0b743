"""A badly broken VM at its worst for the output budget, as a Windows model machine.

Everything a list can hold is over its cap, every name is long and unique (GUID rule names, random
container names, domain SIDs in every DACL), every service hangs with long-named dependents, every
event id names many services, and azrdp has run many times. Realistic in kind (each item is
something a real VM can carry), extreme in quantity; the caps and the trim ladder must hold it.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from azrdp.emulator.windows import image
from azrdp.emulator.windows import state as w
from azrdp.guest import facts as gf
from azrdp.guest.sddl import parse

NOW = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)
BOOT = NOW - timedelta(hours=1)


def worst_machine(seed: int = 11) -> w.Machine:
    rnd = random.Random(seed)
    m = image.healthy(NOW, BOOT)
    m.domain = True
    m.build, m.version = 14393, "10.0.14393"
    domain = "S-1-5-21-{}-{}-{}".format(*(rnd.randrange(10**9, 4 * 10**9) for _ in range(3)))

    def sid() -> str:
        return f"{domain}-{rnd.randrange(1100, 60000)}"

    def guid() -> str:
        return str(uuid.UUID(int=rnd.getrandbits(128)))

    def hexs(n: int) -> str:
        return "".join(rnd.choice("0123456789ABCDEF") for _ in range(n))

    def key_sddl() -> str:
        aces = [
            "(A;;FA;;;SY)",
            f"(D;;FA;;;{sid()})",
            f"(A;;0x12019f;;;{sid()})",
            f"(A;;FR;;;{sid()})",
            "(A;;FA;;;BA)",
            f"(A;;FA;;;{w.SESSIONENV_SID})",
        ]
        rnd.shuffle(aces)
        return f"O:{sid()}G:SYD:P" + "".join(aces)

    # The listener pinned to a certificate in My that is gone; 40 entries in Remote Desktop, 30 in My.
    m.registry.set(w.RDPTCP, "SSLCertificateSHA1Hash", "Binary", bytes.fromhex(hexs(40)))
    m.rd_store.clear()
    for i in range(40):
        tp = hexs(40)
        container = f"te-RemoteDesktop-{guid()}"
        key = w.KeyProv(24, container, "Microsoft Enhanced RSA and AES Cryptographic Provider")
        m.rd_store[tp] = w.Cert(
            tp,
            NOW - timedelta(days=rnd.randrange(1, 900)),
            NOW - timedelta(days=1000),
            f"CN=vm-web-{i:03d}.contoso-{hexs(6).lower()}.corp.example.com",
            "CN=CONTOSO-Issuing-CA-02, DC=contoso, DC=corp",
            ("1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2", "1.3.6.1.4.1.311.54.1.2", "1.3.6.1.4.1.311.21.5"),
            key,
        )
        m.put_file(m.key_path(key), parse(key_sddl()), corrupt=i % 3 == 0)
    for _ in range(30):
        tp = hexs(40)
        m.my_store[tp] = w.Cert(tp, NOW + timedelta(days=300), NOW - timedelta(days=65), f"CN={guid()}")
    m.put_file(w.MACHINEKEYS, parse(f"O:SYG:SYD:PAI(D;;FA;;;{sid()})(A;;FA;;;BA)(A;;FA;;;{sid()})"))
    store = m.registry.ensure(w.RD_STORE)
    store.sd = parse(f"O:{sid()}G:SYD:AI(D;;CC;;;SY)(A;CIID;KA;;;BA)(A;CIID;KR;;;BU)(A;;KA;;;{sid()})")

    # Firewall: the RDP rules scoped by Group Policy, five azrdp-RDP-* rules, 60 inbound blocks.
    def scoped(name: str, action: str, ports: str) -> w.Rule:
        return w.Rule(
            name,
            True,
            "Inbound",
            action,
            "TCP",
            ports,
            ",".join(f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.0/24" for _ in range(6)),
            rf"%ProgramFiles%\Contoso\Agent-{hexs(8)}\bin\agent.exe",
            "RemoteRegistry",
            "Domain, Private, Public",
            f"@contoso-baseline.dll,-{rnd.randrange(10000, 99999)}",
            "GroupPolicy",
        )

    m.rules = [r for r in m.rules if r.name not in gf.RDP_RULES]
    m.rules += [scoped(gf.RDP_TCP_RULE, "Allow", "3389"), scoped(gf.RDP_UDP_RULE, "Allow", "3389")]
    m.rules += [scoped(f"azrdp-RDP-{p}", "Allow", str(p)) for p in (3390, 3391, 3392, 13389, 23389)]
    for _ in range(60):
        ports = rnd.choice(
            ["Any", "3389", "3000-4000", ",".join(str(rnd.randrange(1, 65535)) for _ in range(9))]
        )
        m.rules.append(scoped("{" + guid().upper() + "}", "Block", ports))
    for profile in m.profiles.values():
        profile.policy_inbound, profile.policy_local_rules = "False", "False"
    m.active = ["Domain", "Private", "Public"]

    # Every service hangs; each has long-named dependents; other processes hold the RDP port.
    for service in m.services.values():
        service.state, service.hang, service.start = "Start Pending", "start", "Disabled"
        service.account = f"CONTOSO\\svc-{hexs(10).lower()}-remote-desktop"
    for name in list(gf.SERVICE_NAMES):
        for i in range(5):
            extra = f"Contoso{name}Watcher{i}{hexs(6)}"
            m.services[extra.lower()] = w.Service(
                extra, f"Contoso {name} watcher {i} {guid()}", depends_on=(name,)
            )
    m.listeners = {3389: (rnd.randrange(1000, 60000), f"Contoso.Gateway.{hexs(12)}.Service")}

    # The System log: every id, often, naming many services.
    for event_id in gf.EVENT_IDS:
        for i in range(40):
            m.events.append(w.Event(event_id, NOW - timedelta(hours=i), f"Contoso service {guid()}"))
    m.disk_free = 200 * 1024**2

    # azrdp ran many times: runs recorded, one holding the lock.
    m.azrdp.exists = True
    for i in range(30):
        run_id = hexs(12).lower()
        m.azrdp.runs[run_id] = {
            "run": {
                "id": run_id,
                "t": gf.format_time(NOW - timedelta(minutes=i)),
                "boot": gf.format_time(BOOT),
                "st": rnd.choice(["applied", "partial", "rolledBack", "failed"]),
                "rb": True,
                "u": hexs(12).lower(),
                "steps": [
                    {"id": r, "s": "applied"} for r in ("rdp-services", "machinekeys-acl", "rdp-cert-renew")
                ],
            },
            "ops": {},
            "certs": {},
        }
        m.azrdp.order.append(run_id)
    m.azrdp.lock = w.Lock(m.azrdp.order[-1], NOW + timedelta(minutes=5))
    return m


def worst_guest(seed: int = 11) -> dict[str, Any]:
    """The machine as a scenario `guest` object."""
    return image.dump(worst_machine(seed))


def worst_repairable(seed: int = 11) -> w.Machine:
    """The worst machine with everything azrdp repairs broken at once, and nothing hanging (so the
    plan is as long as it gets): RDP off, logons off, drain mode, security lowered, TLS 1.2 off, the
    service disabled, the MachineKeys folder hardened, SYSTEM denied on the store key, every
    certificate expired, the RDP rules off and inbound blocked by the profile policy."""
    m = worst_machine(seed)
    m.listeners = {}
    m.registry.delete(w.RDPTCP, "SSLCertificateSHA1Hash")
    for service in m.services.values():
        service.hang, service.start = None, "Manual"
        service.state = "Stopped" if service.name in gf.SERVICE_NAMES[:3] else "Running"
    ts = m.service("TermService")
    assert ts is not None
    ts.start = "Disabled"
    for name, value in (("fDenyTSConnections", 1), ("TSServerDrainMode", 1)):
        m.registry.set(w.TS, name, "DWord", value)
    for name, value in (("fLogonDisabled", 1), ("SecurityLayer", 0), ("UserAuthentication", 0)):
        m.registry.set(w.RDPTCP, name, "DWord", value)
    m.registry.set(image.TLS_SERVER["1.2"], "Enabled", "DWord", 0)
    m.registry.set(image.WINLOGON, "WinStationsDisabled", "String", "1")
    for rule in m.rules:
        if rule.name in gf.RDP_RULES:
            rule.enabled, rule.store = False, "Local"
    for profile in m.profiles.values():
        profile.policy_inbound = profile.policy_local_rules = "NotConfigured"
        profile.inbound = "False"
    m.azrdp.lock = None
    return m


def worst_plan_machine(seed: int = 11) -> w.Machine:
    """For the longest plan: the above, with TermService up on an expired certificate whose key
    NETWORK SERVICE cannot read, and another process on TCP 3389 (repair --port 3390 moves RDP)."""
    m = worst_repairable(seed)
    ts = m.service("TermService")
    assert ts is not None
    ts.state, ts.start = "Running", "Manual"
    m.ts_port = 3389
    m.ts_cert = next(iter(m.rd_store))
    m.listeners = {3389: (4242, "Contoso.Gateway.Service")}
    return m
