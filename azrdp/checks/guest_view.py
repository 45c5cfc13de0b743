"""The guest as azrdp judges it: judgements over the collector's raw facts, shared by the guest
checks (azrdp.checks.guest) and the in-guest repair planners (azrdp.repairs.guest).

Everything the scripts used to decide lives here, where tests run it: which certificate the
listener uses (the one Windows says is in use), whether NETWORK SERVICE can read its key (the
DACL walked for every group its token holds), whether a key is lost or merely unreadable (only a
CAPI key whose file is missing is lost; anything azrdp could not read is unknown), whether the
firewall admits the port (rules with their address, program and service scope), whether an event
is RDP's (by its provider or the service it names). Pure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from azrdp.guest import facts as gf
from azrdp.guest import sddl

SAME_BOOT_SECONDS = 20  # LastBootUpTime moves by a clock correction; a restart moves it by far more
TRUSTED_OWNERS = (sddl.SYSTEM, sddl.ADMINISTRATORS)
# What the RDP services are called in SCM events: the display names the collector reports for them.
RDP_SERVICES = ("TermService", "UmRdpService", "SessionEnv", "KeyIso", "CertPropSvc", "CryptSvc")
SVCHOST = r"%systemroot%\system32\svchost.exe"
NTE_BAD_KEYSET = 0x80090016


class KeyState(str, enum.Enum):
    OK = "ok"
    NONE = "none"  # the certificate has no private key at all
    MISSING = "missing"  # a CAPI key whose container file is gone (orphaned)
    UNREADABLE = "unreadable"  # NETWORK SERVICE may not read it (a permissions fault)
    CORRUPT = "corrupt"  # the file is there, permissions are right, and SYSTEM cannot open it
    UNKNOWN = "unknown"  # azrdp could not tell (never treated as lost)


@dataclass(frozen=True)
class GuestFacts:
    facts: gf.Facts
    expected_port: int | None = None  # the port the NSG check evaluated; None when unknown
    guest_time: datetime | None = None  # the guest's clock when the collector ran

    # -- registry --

    def number(self, key: str, name: str) -> int | None:
        return self.facts.number(key, name)

    def effective(self, name: str) -> int | None:
        """A Terminal Services policy value wins over RDP-Tcp's (or Terminal Server's)."""
        policy = self.number("tspol", name)
        if policy is not None:
            return policy
        return self.number("ts" if name == "fDenyTSConnections" else "rdptcp", name)

    @property
    def listener_port(self) -> int | None:
        port = self.number("rdptcp", "PortNumber")
        return port if port is not None else self.expected_port

    @property
    def pin(self) -> str | None:
        """SSLCertificateSHA1Hash, upper-case hex (REG_BINARY, as the collector printed it)."""
        entry = self.facts.value("rdptcp", "SSLCertificateSHA1Hash")
        if entry is None or entry.kind != "Binary" or not isinstance(entry.data, str):
            return None
        return entry.data.upper() or None

    # -- certificates and keys --

    @cached_property
    def listener_cert(self) -> gf.CertFacts | None:
        """The certificate Windows says the listener uses (Win32_TSGeneralSetting), else the pinned
        one, else the newest in the Remote Desktop store."""
        certs = self.facts.certs
        if certs is None:
            return None
        ts = self.facts.ts
        in_use = (ts.cert_hash or "").strip().upper() if ts is not None else ""
        if in_use and set(in_use) != {"0"}:
            return certs.find(in_use)
        if self.pin:
            return certs.find(self.pin)
        rd = [c for c in certs.certs if c.store == "rd"]
        return max(rd, key=lambda c: c.not_after or "", default=None)

    def expired(self, cert: gf.CertFacts) -> bool:
        expires = cert.expires
        return expires is not None and self.guest_time is not None and expires <= self.guest_time

    def key_sd(self, cert: gf.CertFacts) -> sddl.SecurityDescriptor | None:
        if cert.key is None or not cert.key.sddl:
            return None
        try:
            return sddl.parse(cert.key.sddl)
        except sddl.SddlError:
            return None

    def key_state(self, cert: gf.CertFacts) -> KeyState:
        key = cert.key
        if cert.has_key is False:
            return KeyState.NONE
        if key is None or key.prov_type is None:
            return KeyState.UNKNOWN
        if key.cng is False and key.exists is False:
            return KeyState.MISSING  # only a CAPI key can be judged orphaned (reference)
        if not key.exists:
            return KeyState.UNKNOWN
        sd = self.key_sd(cert)
        if sd is None:
            return KeyState.UNKNOWN
        if not sddl.holds(sddl.access(sd, sddl.NETWORK_SERVICE_TOKEN), sddl.FILE_READ):
            return KeyState.UNREADABLE
        if key.opens not in (None, 0):
            return (
                KeyState.CORRUPT
                if sddl.holds(sddl.access(sd, sddl.SYSTEM_TOKEN), sddl.FILE_READ)
                else (KeyState.UNREADABLE)
            )
        return KeyState.OK

    def key_denied(self, cert: gf.CertFacts) -> bool:
        """An explicit Deny ACE takes read away from a SID NETWORK SERVICE's token holds."""
        sd = self.key_sd(cert)
        return sd is not None and any(
            a.type == "D" and a.sid in sddl.NETWORK_SERVICE_TOKEN and a.mask & sddl.FILE_READ
            for a in sd.dacl or ()
        )

    def system_locked_out(self, sd: sddl.SecurityDescriptor) -> bool:
        """SYSTEM can read the descriptor but not write its DACL (it needs ownership first)."""
        return not sddl.holds(sddl.access(sd, sddl.SYSTEM_TOKEN), sddl.WRITE_DAC)

    def bad_entry(self, cert: gf.CertFacts) -> bool:
        """An entry that blocks Windows from minting a new certificate: expired, or without a key."""
        return self.expired(cert) or self.key_state(cert) in (KeyState.NONE, KeyState.MISSING)

    @property
    def certs_listed(self) -> bool:
        """Every Remote Desktop store entry was listed (the list is capped)."""
        certs = self.facts.certs
        return certs is not None and len([c for c in certs.certs if c.store == "rd"]) >= (certs.rd_count or 0)

    # -- MachineKeys and the store key --

    @cached_property
    def folder_sd(self) -> sddl.SecurityDescriptor | None:
        mk = self.facts.machine_keys
        if mk is None or not mk.sddl:
            return None
        try:
            return sddl.parse(mk.sddl)
        except sddl.SddlError:
            return None

    @property
    def folder_hardened(self) -> bool | None:
        """Everyone lacks (or is denied part of) the default 0x12019f on the folder: by meaning, not
        by string, so an extra harmless ACE or another spelling is no deviation (reference C-MK)."""
        sd = self.folder_sd
        if sd is None:
            return None
        return not sddl.holds(sddl.access(sd, sddl.EVERYONE_TOKEN), sddl.MACHINEKEYS_EVERYONE)

    def store_sd(self) -> tuple[str, sddl.SecurityDescriptor] | None:
        """The Remote Desktop store key new entries are created under, and its descriptor."""
        certs = self.facts.certs
        if certs is None:
            return None
        for target, text in (("rdc", certs.certs_sddl), ("rds", certs.store_sddl)):
            if text:
                try:
                    return target, sddl.parse(text)
                except sddl.SddlError:
                    return None
        return None

    @property
    def store_denies_system(self) -> bool:
        found = self.store_sd()
        if found is None:
            return False
        rights = sddl.access(found[1], sddl.SYSTEM_TOKEN, sddl.KEY_MAPPING)
        return not sddl.holds(rights, sddl.KEY_CREATE_SUB_KEY | sddl.KEY_SET_VALUE)

    # -- events --

    def rcm_events(self) -> dict[int, int]:
        """RCM 1057/1058 logged since the listener's certificate was created: older ones belong to
        its predecessor (a run that replaced the certificate leaves them behind for 7 days)."""
        cert = self.listener_cert
        since = gf.parse_time(cert.not_before) if cert is not None else None
        out = {}
        for event_id in gf.RCM_EVENTS:
            event = self.facts.event(event_id)
            if event is None or not event.count:
                continue
            last = gf.parse_time(event.last)
            if since is not None and last is not None and last < since:
                continue
            out[event_id] = int(event.count)
        return out

    def service_events(self, names: tuple[str, ...]) -> dict[int, int]:
        """SCM events that name one of these services (by the display name the collector read)."""
        displays = {
            (s.display or "").lower() for s in self.facts.services or () if s.name in names and s.display
        }
        out = {}
        for event_id in gf.SCM_EVENTS:
            event = self.facts.event(event_id)
            if event is not None and any(src.lower() in displays for src in event.sources):
                out[event_id] = int(event.count or 0)
        return out

    # -- firewall --

    @cached_property
    def active_profiles(self) -> list[str]:
        """Profiles where the firewall is on and that apply to a connected network (all if unknown)."""
        fw = self.facts.firewall
        if fw is None:
            return []
        active = set(fw.active)
        return [p.name or "" for p in fw.profiles if p.enabled and (not active or p.name in active)]

    def rule_applies(self, rule: gf.RuleFacts, port: int, protocol: str = "TCP") -> bool:
        """The rule matches RDP's traffic to the port on every active profile (any remote address)."""
        return (
            rule.enabled is True
            and (rule.direction or "Inbound") == "Inbound"
            and (rule.protocol or "Any").upper() in (protocol, "ANY")
            and port_in(rule.local_ports, port)
            and _for_termservice(rule)
            and _profiles_cover(rule.profile, self.active_profiles)
        )

    def rule_admits(self, rule: gf.RuleFacts | None, port: int, protocol: str = "TCP") -> bool:
        return rule is not None and rule.action == "Allow" and self.rule_applies(rule, port, protocol)

    def tcp_admitted(self, port: int) -> bool:
        fw = self.facts.firewall
        if fw is None:
            return False
        names = (gf.RDP_TCP_RULE, gf.custom_rule_name(port))
        return any(self.rule_admits(fw.rule(name), port) for name in names)

    def blocking_rules(self, port: int) -> tuple[list[gf.RuleFacts], list[gf.RuleFacts]]:
        """Block rules on the port: those that block every client, and those scoped to some addresses."""
        fw = self.facts.firewall
        all_clients: list[gf.RuleFacts] = []
        some: list[gf.RuleFacts] = []
        for rule in fw.blocks if fw is not None else ():
            if rule.action != "Block" or not self.rule_applies(rule, port):
                continue
            (all_clients if (rule.remote or "Any").lower() == "any" else some).append(rule)
        return all_clients, some

    # -- azrdp's own runs --

    def reboot_pending(self) -> list[str]:
        """Runs that applied a change Windows reads only at boot, during the current boot."""
        azr, os_ = self.facts.azrdp, self.facts.os
        if azr is None or azr.owner not in TRUSTED_OWNERS or os_ is None:
            return []
        now = gf.parse_time(os_.boot)
        out = []
        for run in azr.runs:
            then = gf.parse_time(run.boot)
            same = (
                now is not None
                and then is not None
                and abs((now - then).total_seconds()) <= SAME_BOOT_SECONDS
            )
            if run.reboot and run.state not in ("undone", "refused") and same and run.id:
                out.append(run.id)
        return out


def port_in(ports: str | None, port: int) -> bool:
    for part in (ports or "").split(","):
        text = part.strip()
        if text.lower() == "any":
            return True
        low, _, high = text.partition("-")
        if low.isdigit() and int(low) <= port <= int(high if high.isdigit() else low):
            return True
    return False


def _profiles_cover(profile: str | None, active: list[str]) -> bool:
    names = {p.strip().lower() for p in (profile or "Any").split(",")}
    return "any" in names or all(p.lower() in names for p in active)


def _for_termservice(rule: gf.RuleFacts) -> bool:
    """A program or service filter that is not TermService's does not match RDP's traffic."""
    program = (rule.program or "Any").strip().lower()
    service = (rule.service or "Any").strip().lower()
    program_ok = program == "any" or program.endswith("\\svchost.exe")
    return program_ok and service in ("any", "termservice", "*")
