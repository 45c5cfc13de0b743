"""What executor.ps1 does on a machine in this state: the plan's primitive operations, applied.

The same steps as the script, against the model: validate every operation against the allow-
lists (the tables of azrdp.guest.plan, which a test keeps equal to the script's), take the guest
lock, record each operation's prior value before changing anything, apply, read back; on a
refused or failed operation run the step's rollback list for what was applied, and stop; bound
every wait by the run's deadline on the machine's clock. The preconditions compare JSON like the
script does. Windows' reactions (a service that hangs, a certificate minted at start) come from
the model's state, never from knowledge of what azrdp meant to repair.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from azrdp.emulator.windows import state as w
from azrdp.emulator.windows.access import allows
from azrdp.emulator.windows.collector import reg_state, sddl_of
from azrdp.guest import facts as gf
from azrdp.guest import plan as gp
from azrdp.guest.sddl import SddlError, owner_and_dacl, parse
from azrdp.guest.wire import UnpackError, unpack_token

ROLLBACK_GRACE = gp.ROLLBACK_GRACE
LOCK_MARGIN = gp.LOCK_MARGIN
ACL_TARGETS = {"mk": ("dir", w.MACHINEKEYS), "rds": ("reg", w.RD_STORE), "rdc": ("reg", w.RD_CERTIFICATES)}
KEY_FILE = re.compile(gp.KEY_FILE.pattern[:-1] + r"(\.azrdp-[0-9a-f]{12}(-new)?)?$")


class Refused(Exception):
    """A precondition that does not hold, a pending service, the deadline: the step is refused."""


class Failed(Exception):
    """An operation Windows would not complete."""


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _text(value: Any) -> str:
    """A field as PowerShell's [string] cast reads it ($null is '')."""
    return "" if value is None else str(value)


def allowed(op: Mapping[str, Any]) -> bool:
    """Assert-AzrdpAllowed: the kind first, then every field naming a target or steering the op."""
    kind = _text(op.get("k"))
    if kind not in gp.KINDS:
        return False
    if kind.startswith("reg."):
        return _text(op.get("n")) in gp.REG_WRITABLE.get(_text(op.get("key")), ())
    if kind == "svc.cfg":
        return op.get("n") in gp.SERVICES and _text(op.get("sm")) in gp.SET_START_MODES
    if kind == "svc.ctl":
        return op.get("n") in gp.SERVICES and _text(op.get("a")) in gp.ACTIONS
    if kind == "fw.set":
        return (
            (op.get("n") in gp.FW_RULES or bool(gp.CUSTOM_RULE.match(_text(op.get("n")))))
            and _text(op.get("en")) in ("", "True", "False")
            and _text(op.get("act")) in ("", "Allow", "Block")
            and re.fullmatch(r"[A-Za-z0-9,-]*", _text(op.get("lp"))) is not None
        )
    if kind in ("fw.new", "fw.del"):
        name = _text(op.get("n"))
        return name == gf.CUSTOM_RULE_PREFIX + _text(op.get("p")) and bool(gp.CUSTOM_RULE.match(name))
    if kind == "fw.prof":
        return op.get("n") in gf.PROFILES and _text(op.get("inb")) in ("True", "False", "NotConfigured")
    if kind == "acl":
        target = _text(op.get("o"))
        prefix, _, name = target.partition(":")
        if target in ACL_TARGETS:
            return int(op.get("tk") or 0) == 0  # takeown is for key files only
        return prefix in ("key", "cng") and bool(KEY_FILE.match(name))
    if kind == "key.ren":
        return bool(KEY_FILE.match(_text(op.get("n")))) and bool(KEY_FILE.match(_text(op.get("to"))))
    if kind == "cert.rm":
        return op.get("s") == "rd" and bool(re.fullmatch(r"[0-9A-F]{40}|@", _text(op.get("tp"))))
    if kind == "cert.put":
        return (
            op.get("s") == "rd"
            and bool(re.fullmatch(r"[0-9A-F]{40}", _text(op.get("tp"))))
            and bool(re.fullmatch(r"([0-9a-f]{12})?", _text(op.get("sr"))))
        )
    if kind == "wait.lsn":
        return bool(re.fullmatch(r"[1-9][0-9]{0,4}", _text(op.get("p"))))
    return True


DISK_FULL = "There is not enough space on the disk."


class Run:
    def __init__(
        self,
        m: w.Machine,
        run_id: str,
        deadline_s: int,
        fail_ops: frozenset[int] = frozenset(),
        fail_saves: frozenset[int] = frozenset(),
    ) -> None:
        self.m = m
        self.run_id = run_id
        self.deadline = m.clock + timedelta(seconds=deadline_s)
        self.records: dict[int, dict[str, Any]] = {}
        self.fail_ops = fail_ops  # tests: ops that fail as if Windows refused them
        # tests: ops whose record cannot be written once they changed something (a full disk)
        self.fail_saves = fail_saves
        self.data = m.azrdp.runs.setdefault(run_id, {"run": {}, "ops": {}, "certs": {}})

    # -- records --

    def confirm(self, record: dict[str, Any], now: Any, op: dict[str, Any]) -> None:
        """Confirm-AzrdpPrior: record the prior value (written before any change), then check."""
        record["p"] = now
        self.save(record)
        if int(op["chk"]) == 1 and _json(now) != _json(op["x"]):
            raise Refused(f"{op['k']} found {_json(now)}, expected {_json(op['x'])}")

    def save(self, record: dict[str, Any]) -> None:
        if int(record["i"]) >= 0:
            if int(record["i"]) in self.fail_saves and record["s"] != "applying":
                raise Failed(DISK_FULL)
            self.data["ops"][str(record["i"])] = json.loads(json.dumps(record))

    # -- the ops --

    def apply(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        if int(op["i"]) in self.fail_ops and int(op["i"]) >= 0:
            record["p"] = None
            self.save(record)
            raise Failed(f"Simulated failure of operation {op['i']}.")
        kind = op["k"]
        handler = getattr(self, "op_" + kind.replace(".", "_"))
        handler(op, record, deadline)

    def op_reg_set(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        path = gf.REG_KEYS[op["key"]]
        self.confirm(record, reg_state(self.m.registry.get(path, op["n"])), op)
        kind, data = op["v"]
        if kind == "DWord":
            data = int(data) & 0xFFFFFFFF
        elif kind == "QWord":
            data = int(data) & 0xFFFFFFFFFFFFFFFF
        elif kind == "Binary":
            data = bytes.fromhex(str(data))
        elif kind == "MultiString":
            data = [str(v) for v in data]
        elif kind not in ("String", "ExpandString"):
            raise Failed(f"A registry value of kind {kind} cannot be written.")
        self.m.registry.set(path, op["n"], kind, data)
        record["a"] = reg_state(self.m.registry.get(path, op["n"]))

    def op_reg_del(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        path = gf.REG_KEYS[op["key"]]
        self.confirm(record, reg_state(self.m.registry.get(path, op["n"])), op)
        key = self.m.registry.key(path)
        if key is not None:
            self.m.registry.delete(path, op["n"])
            if int(op["dk"]) == 1 and not key.values and not self.m.registry.has_subkeys(path):
                self.m.registry.delete_key(path)
        record["a"] = reg_state(self.m.registry.get(path, op["n"]))

    def _acl_target(self, target: str) -> tuple[str, Any]:
        if target in ACL_TARGETS:
            kind, path = ACL_TARGETS[target]
        else:
            prefix, _, name = target.partition(":")
            kind, path = "file", (w.MACHINEKEYS if prefix == "key" else w.CNG_KEYS) + "\\" + name
        holder = self.m.registry.key(path) if kind == "reg" else self.m.file(path)
        if holder is None or holder.sd is None:
            raise Failed(f"Cannot find {path}.")
        return kind, holder

    def op_acl(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        kind, holder = self._acl_target(op["o"])
        access_kind = "key" if kind == "reg" else "file"
        if not allows(holder.sd, w.SYSTEM_TOKEN, w.READ_CONTROL, access_kind):
            raise Failed("Attempted to perform an unauthorized operation.")
        self.confirm(record, sddl_of(holder.sd), op)
        # The Owner section is written only when the owner changes here: takeown already makes
        # SYSTEM the owner (it enables SeTakeOwnershipPrivilege itself).
        set_owner = int(op["own"]) == 1 and int(op["tk"]) != 1
        if int(op["tk"]) == 1:
            holder.sd = holder.sd.__class__(w.SYSTEM, holder.sd.group, holder.sd.dacl_flags, holder.sd.dacl)
        # Writing a section needs its right on the object (the registry key is opened with exactly
        # those rights): the owner holds READ_CONTROL and WRITE_DAC implicitly, never WRITE_OWNER
        # (Learn: "How AccessCheck Works").
        wanted = w.READ_CONTROL | w.WRITE_DAC | (w.WRITE_OWNER if set_owner else 0)
        if not allows(holder.sd, w.SYSTEM_TOKEN, wanted, access_kind):
            raise Failed("Attempted to perform an unauthorized operation.")
        try:
            new = parse(str(op["to"]))
        except SddlError as exc:
            raise Failed(f"The SDDL form of a security descriptor object is invalid: {exc}") from None
        owner = holder.sd.owner
        if set_owner and new.owner is not None:
            # Without SeRestorePrivilege (which SetAccessControl does not enable) an owner must be
            # the caller or a group of its token with the owner attribute: ERROR_INVALID_OWNER (1307).
            if new.owner not in (w.SYSTEM, "S-1-5-32-544"):
                raise Failed("The security identifier is not allowed to be the owner of this object.")
            owner = new.owner
        holder.sd = holder.sd.__class__(owner, holder.sd.group, new.dacl_flags, new.dacl)
        record["a"] = sddl_of(holder.sd)

    def op_key_ren(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        source = self.m.file(w.MACHINEKEYS + "\\" + op["n"])
        target = self.m.file(w.MACHINEKEYS + "\\" + op["to"])
        now = source is not None and target is None
        optional_absent = int(op["opt"]) == 1 and source is None
        op["x"] = now or optional_absent
        self.confirm(record, now, op)
        if not now or source is None:
            if optional_absent:
                return
            raise Refused(f"{op['n']} is missing or {op['to']} exists")
        del self.m.files[source.path.lower()]
        self.m.put_file(w.MACHINEKEYS + "\\" + op["to"], source.sd, source.corrupt)
        record["a"] = op["to"]

    def _store_writable(self) -> bool:
        key = self.m.registry.key(w.RD_CERTIFICATES) or self.m.registry.key(w.RD_STORE)
        return key is None or key.sd is None or allows(key.sd, w.SYSTEM_TOKEN, w.KEY_CREATE_SUB_KEY, "key")

    def op_cert_rm(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        tp = str(op["tp"])
        cert = self.m.rd_store.get(tp)
        op["x"] = "present"
        self.confirm(record, "present" if cert else "absent", op)
        if cert is not None:
            # The serialized entry: certificate and properties with the key link, never the key.
            self.data["certs"][tp] = _cert_doc(cert)
            del self.m.rd_store[tp]
        record["a"] = "absent"

    def op_cert_put(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        tp = str(op["tp"])
        op["x"] = "absent"
        self.confirm(record, "present" if tp in self.m.rd_store else "absent", op)
        source = self.m.azrdp.runs.get(op["sr"] or self.run_id, {}).get("certs", {})
        if tp not in source:
            raise Failed(f"Could not find file 'cert-{tp}.sst'.")
        if tp not in self.m.rd_store:
            if not self._store_writable():
                raise Failed("Access denied (the Remote Desktop store key refuses SYSTEM).")
            self.m.rd_store[tp] = _cert_from(source[tp])
        record["a"] = "present"

    def op_svc_cfg(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        service = self.m.service(op["n"])
        if service is None:
            raise Failed(f"Service {op['n']} was not found.")
        self.confirm(record, {"sm": service.start, "acct": service.account}, op)
        if op["sm"]:
            service.start = {"Automatic": "Auto"}.get(op["sm"], op["sm"])
        if op["acct"]:
            service.account = op["acct"]
        record["a"] = {"sm": service.start, "acct": service.account}

    def _wait(self, seconds: int, deadline: Any) -> float:
        left = float((deadline - self.m.clock).total_seconds())
        return max(1.0, min(float(seconds), left))

    def _await(self, name: str, state: str, seconds: float) -> None:
        """ServiceController.WaitForStatus with a timeout."""
        service = self.m.service(name)
        assert service is not None
        if service.state != state:
            self.m.advance(seconds)
            raise Failed("Time out has expired and the operation has not been completed.")
        self.m.advance(self.m.service_seconds)

    def op_svc_ctl(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        service = self.m.service(op["n"])
        if service is None:
            raise Failed(f"Cannot find any service with service name '{op['n']}'.")
        now = service.state.replace(" ", "")
        checked = dict(op, x=op["x"] or now)
        self.confirm(record, now, checked)
        if "Pending" in now:
            raise Refused(f"{op['n']} is {now}")
        # One bound for the whole op; every wait gets what is left of it (at least 1 s, as
        # Get-AzrdpWait), the running dependents stopped first within it.
        until = self.m.clock + timedelta(seconds=self._wait(int(op["w"]), deadline))

        def left() -> float:
            return self._wait(int(op["w"]), until)

        dependents: list[str] = []
        if op["a"] != "start" and service.state == "Running":
            for dependent in self.m.dependents(service.name):
                if dependent.state == "Running":
                    dependents.append(dependent.name)
                    self.m.stop_service(dependent.name)
                    self._await(dependent.name, "Stopped", left())
            self.m.stop_service(service.name)
            self._await(service.name, "Stopped", left())
        if op["a"] != "stop":
            try:
                self.m.start_service(service.name)
            except w.ApiError as exc:
                raise Failed(f"Cannot start service {op['n']}: {exc}") from None
            self._await(service.name, "Running", left())
            if op["a"] == "restart":
                for name in reversed(dependents):
                    try:
                        self.m.start_service(name)
                    except w.ApiError as exc:
                        raise Failed(f"Cannot start service {name}: {exc}") from None
                    self._await(name, "Running", left())
        record["a"] = service.state.replace(" ", "")

    def _rule_state(self, name: str) -> dict[str, Any] | None:
        rule = next((r for r in self.m.rules if r.name == name and r.store == "Local"), None)
        if rule is None:
            return None
        return {"en": rule.enabled, "act": rule.action, "lp": rule.local_ports}

    def op_fw_set(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        self.confirm(record, self._rule_state(op["n"]), op)
        rule = next((r for r in self.m.rules if r.name == op["n"] and r.store == "Local"), None)
        if rule is None:
            raise Failed(f"No MSFT_NetFirewallRule objects found with property 'Name' equal to '{op['n']}'.")
        if op["en"]:
            rule.enabled = op["en"] == "True"
        if op["act"]:
            rule.action = op["act"]
        if op["lp"]:
            rule.local_ports = op["lp"]
        record["a"] = self._rule_state(op["n"])

    def op_fw_new(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        op["x"] = None
        self.confirm(record, self._rule_state(op["n"]), op)
        self.m.rules.append(
            w.Rule(op["n"], local_ports=str(op["p"]), program="Any", service="TermService", group="")
        )
        record["a"] = self._rule_state(op["n"])

    def op_fw_del(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        op["x"] = {"en": True, "act": "Allow", "lp": str(op["p"])}
        self.confirm(record, self._rule_state(op["n"]), op)
        self.m.rules = [r for r in self.m.rules if not (r.name == op["n"] and r.store == "Local")]
        record["a"] = None

    def op_fw_prof(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        profile = self.m.profiles.get(op["n"])
        if profile is None:
            raise Failed(f"No profile {op['n']}.")
        self.confirm(record, profile.inbound, op)
        profile.inbound = op["inb"]
        record["a"] = profile.inbound

    def op_wait_cert(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        wait = self._wait(int(op["w"]), deadline)
        known = set(op["ex"])
        fresh = [
            c.thumbprint
            for c in self.m.rd_store.values()
            if c.thumbprint not in known and c.key is not None and c.not_after > self.m.clock
        ]
        if not fresh:
            self.m.advance(wait)
            raise Failed(f"wait.cert: nothing appeared within {op['w']} s.")
        self.m.advance(self.m.mint_seconds)
        record["a"] = fresh[-1]

    def op_wait_lsn(self, op: dict[str, Any], record: dict[str, Any], deadline: Any) -> None:
        wait = self._wait(int(op["w"]), deadline)
        if self.m.listening() != int(op["p"]):
            self.m.advance(wait)
            raise Failed(f"wait.lsn: nothing appeared within {op['w']} s.")
        ts = self.m.service("TermService")
        assert ts is not None
        self.m.advance(1)
        record["a"] = ts.pid


def _cert_doc(cert: w.Cert) -> dict[str, Any]:
    key = cert.key
    return {
        "tp": cert.thumbprint,
        "na": gf.format_time(cert.not_after),
        "nb": gf.format_time(cert.not_before),
        "sub": cert.subject,
        "iss": cert.issuer,
        "eku": list(cert.eku),
        "key": None
        if key is None
        else {
            "pt": key.prov_type,
            "c": key.container,
            "pn": key.provider,
            "ks": key.key_spec,
            "f": key.cng_file,
        },
    }


def _cert_from(doc: Mapping[str, Any]) -> w.Cert:
    key = doc.get("key")
    not_after, not_before = gf.parse_time(doc["na"]), gf.parse_time(doc["nb"])
    assert not_after is not None and not_before is not None
    return w.Cert(
        doc["tp"],
        not_after,
        not_before,
        doc["sub"],
        doc["iss"],
        tuple(doc["eku"]),
        None if key is None else w.KeyProv(key["pt"], key["c"], key["pn"], key["ks"], key["f"]),
    )


def _root_trusted(m: w.Machine) -> None:
    """Initialize-AzrdpRoot: azrdp's folder only when SYSTEM or Administrators own it."""
    if m.azrdp.owner not in (w.SYSTEM, "S-1-5-32-544"):
        raise Failed(
            f"C:\\ProgramData\\azrdp is owned by {m.azrdp.owner}, not SYSTEM or Administrators; azrdp will "
            "not use it."
        )


def execute(
    m: w.Machine,
    run_id: str,
    token: str,
    fail_ops: frozenset[int] = frozenset(),
    fail_saves: frozenset[int] = frozenset(),
) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """Invoke-AzrdpExecute: (run result, error, error code). The facts after are collected by the caller."""
    if not re.fullmatch(r"[0-9a-f]{12}", run_id):
        return None, "RunId must be 12 lower-case hex characters.", "parameter"
    try:
        plan = unpack_token(token)
        if not isinstance(plan, dict) or plan.get("v") != gp.PLAN_VERSION or plan.get("run") != run_id:
            raise ValueError("plan: not a plan of this version for this run")
        for step in plan["steps"]:
            for op in [*step["ops"], *step["rb"]]:
                if not allowed(op):
                    raise ValueError(f"plan: operation {op.get('k')} is outside the allow-list.")
    except (UnpackError, ValueError, KeyError, TypeError) as exc:
        return None, gf.limit_text(str(exc), gf.LIMITS["fatal"]), "plan"
    try:
        _root_trusted(m)
    except Failed as exc:
        return None, gf.limit_text(str(exc), gf.LIMITS["fatal"]), "internal"
    m.azrdp.exists = True
    lock = m.azrdp.lock
    if lock is not None and (lock.torn or lock.run != run_id) and lock.until > m.clock:
        holder = "an unreadable lock" if lock.torn else f"run {lock.run}"
        message = f"{holder} holds the guest lock until {gf.format_time(lock.until)}."
        return None, gf.limit_text("locked: " + message, gf.LIMITS["fatal"]), "locked"
    m.azrdp.lock = w.Lock(run_id, m.clock + timedelta(seconds=int(plan["dl"]) + ROLLBACK_GRACE + LOCK_MARGIN))
    try:
        if run_id in m.azrdp.runs:
            raise Failed(f"Run {run_id} already exists in this guest.")
        return _execute(m, run_id, plan, fail_ops, fail_saves), None, None
    except Failed as exc:
        return None, gf.limit_text(str(exc), gf.LIMITS["fatal"]), "internal"
    finally:
        if m.azrdp.lock is not None and m.azrdp.lock.run == run_id:
            m.azrdp.lock = None


def _execute(
    m: w.Machine, run_id: str, plan: dict[str, Any], fail_ops: frozenset[int], fail_saves: frozenset[int]
) -> dict[str, Any]:
    run = Run(m, run_id, int(plan["dl"]), fail_ops, fail_saves)
    m.azrdp.order.append(run_id)
    steps: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    summary = {
        "id": run_id,
        "t": gf.format_time(m.clock),
        "boot": gf.format_time(m.boot),
        "st": "applying",
        "rb": False,
        "u": plan["u"],
        "steps": steps,
    }
    run.data["run"] = summary
    state = "applied"
    at_boot = False
    for index, step in enumerate(plan["steps"]):
        outcome: dict[str, Any] = {"id": step["id"], "s": "applied", "e": None}
        steps.append(outcome)
        if state != "applied":
            outcome["s"] = "notRun"
            continue
        applied: list[int] = []
        for op in step["ops"]:
            op = json.loads(json.dumps(op))
            record: dict[str, Any] = {
                "i": op["i"],
                "g": index,
                "op": op,
                "s": "applying",
                "p": None,
                "a": None,
                "e": None,
            }
            run.records[int(op["i"])] = record
            try:
                if m.clock + timedelta(seconds=int(op["w"])) > run.deadline:
                    raise Refused(f"the run deadline would pass during {op['k']}")
                run.apply(op, record, run.deadline)
                record["s"] = "applied"
                applied.append(int(op["i"]))
                # A change whose record cannot be written fails its step (rolled back).
                run.save(record)
            except (Refused, Failed) as exc:
                record["s"] = outcome["s"] = "refused" if isinstance(exc, Refused) else "failed"
                record["e"] = outcome["e"] = gf.limit_text(str(exc), gf.LIMITS["error"])
            if record["s"] != "applied":
                with contextlib.suppress(Failed):
                    run.save(record)
            results.append(
                {"i": op["i"], "s": record["s"], "e": record["e"], "p": record["p"], "a": record["a"]}
            )
            if record["s"] != "applied":
                break
        if outcome["s"] != "applied":
            state = "partial"
            failed = (
                _rollback(run, step, applied, run.deadline + timedelta(seconds=ROLLBACK_GRACE))
                if applied
                else 0
            )
            for result in results:
                if int(result["i"]) in applied:
                    result["s"] = run.records[int(result["i"])]["s"]
            if failed == 0 and outcome["s"] == "failed":
                outcome["s"] = "rolledBack"  # nothing of it is left changed
            if failed:
                outcome["s"] = "failed"
                text = f"{failed} change(s) could not be rolled back: {outcome['e']}"
                outcome["e"] = gf.limit_text(text, gf.LIMITS["error"])
        elif int(step["b"]) == 1:
            at_boot = True
    if state == "applied" and plan["u"] and plan["u"] in m.azrdp.runs:
        m.azrdp.runs[plan["u"]]["run"]["st"] = "undone"
    summary["st"] = state
    summary["rb"] = at_boot
    summary["steps"] = json.loads(json.dumps(steps))
    return {
        "id": run_id,
        "st": state,
        "dir": gf.BACKUP_ROOT + "\\" + run_id,
        "steps": steps,
        "ops": results,
        "all": True,
    }


def _rollback(run: Run, step: dict[str, Any], applied: list[int], deadline: Any) -> int:
    failed = 0
    for op in step["rb"]:
        op = json.loads(json.dumps(op))
        if int(op["of"]) not in applied:
            continue
        if op["k"] == "cert.rm" and op["tp"] == "@":
            op["tp"] = str(run.records[int(op["of"])]["a"])
        record: dict[str, Any] = {
            "i": -1,
            "g": -1,
            "op": op,
            "s": "applying",
            "p": None,
            "a": None,
            "e": None,
        }
        try:
            run.apply(op, record, deadline)
        except (Refused, Failed):
            failed += 1
            continue
        # Reverted, whether or not its record can still be written.
        forward = run.records[int(op["of"])]
        forward["s"] = "rolledBack"
        with contextlib.suppress(Failed):
            run.save(forward)
    return failed


def records(m: w.Machine, run_id: str) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """Get-AzrdpRecords."""
    if not re.fullmatch(r"[0-9a-f]{12}", run_id):
        return None, "RunId must be 12 lower-case hex characters.", "internal"
    try:
        _root_trusted(m)
    except Failed as exc:
        return None, gf.limit_text(str(exc), gf.LIMITS["fatal"]), "internal"
    data = m.azrdp.runs.get(run_id)
    if data is None or not data.get("run"):
        return None, f"No records of run {run_id} in this guest.", "unknown"
    run = data["run"]
    ops = [data["ops"][k] for k in sorted(data["ops"], key=int)]
    return (
        {
            "id": run["id"],
            "t": run["t"],
            "boot": run["boot"],
            "st": run["st"],
            "u": run["u"],
            "steps": run["steps"],
            "ops": ops,
            "all": True,
        },
        None,
        None,
    )


def history(m: w.Machine) -> list[dict[str, Any]]:
    """Get-AzrdpHistory: the newest ten runs."""
    if not m.azrdp.exists or m.azrdp.owner not in (w.SYSTEM, "S-1-5-32-544"):
        return []
    out = []
    for run_id in reversed(m.azrdp.order[-10:]):
        run = m.azrdp.runs[run_id]["run"]
        out.append(
            {
                "id": run["id"],
                "t": run["t"],
                "st": run["st"],
                "u": run["u"],
                "s": [f"{s['id']}:{s['s']}" for s in run["steps"]],
            }
        )
    return out


def validate_sddl(text: str) -> str:
    return sddl_of(owner_and_dacl(parse(text)))
