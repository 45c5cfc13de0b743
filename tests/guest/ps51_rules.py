"""A Windows PowerShell 5.1 checker for azrdp's in-guest scripts.

The scripts run as Windows PowerShell 5.1 under SYSTEM through Run Command and can never run in
these tests. This module parses them with tree-sitter-powershell and reports what is known to
break on Windows although it parses and passes the guest simulation. The rules, their reasons
and their sources are listed in ``RULES`` and in docs/guest-contract.md ("Writing guest
PowerShell").

API (import it from a test in tests/guest, or run ``python tests/guest/ps51_rules.py [files]``):

``check_file(path) -> list[Violation]``
    Check one ``.ps1``. The functions and script-level variables of the files it is composed with
    (its ``# azrdp-include: <file>`` lines, and the files that include it) are visible to it.
``check_source(text, name="<source>", companions=()) -> list[Violation]``
    Check PowerShell source; ``companions`` are ``(name, text)`` pairs composed with it.
``check_paths(paths) -> list[Violation]`` / ``check_shipped() -> list[Violation]``
    Check several files; ``check_shipped`` checks every ``*.ps1`` under ``azrdp/`` (found by glob,
    so a new script is checked without being listed anywhere).
``shipped_scripts() -> list[Path]``, ``used_commands(paths) -> set[str]``
    The scripts, and the cmdlets they call (what ``tests/data/regen_ps51_subset.py`` copies).

``Violation(file, line, rule, message)``: ``file`` is relative to the repository when it lies in
it; ``str(v)`` is ``file:line: rule: message``. Every rule id is a key of ``RULES``.

The cmdlet catalogue is ``tests/data/ps51-cmdlets-subset.json``: the entries of
``ps51-cmdlets.json`` (every Windows PowerShell 5.1 and Windows Server 2016 cmdlet, from the
official help sources) that the scripts use plus those an executor plausibly needs. A cmdlet
missing from it is reported; ``python tests/data/regen_ps51_subset.py <ps51-cmdlets.json>``
copies it in.

The data flow behind rules array-return, array-test and count-scalar is deliberately small: per
function, every assignment to a variable (any branch, any nested script block) is classified as a
list, a dictionary, a scalar or unknown, and a variable counts as a collection only when every
assignment makes one. A function's result is known only when every ``return`` uses the unary
comma (or returns a hashtable). What the checker cannot prove is reported, never assumed.

The grammar is tree-sitter-powershell's: it reads a one-line `function F { param(...) body }` and
several `switch` clauses on one line as parse errors, so write them on separate lines. It reads a
numeric range standing alone (`1..3`) as a command name, and `$x.Method(...)` in a command's
arguments as two nodes; the checker accounts for both.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import tree_sitter_powershell as tsp
from tree_sitter import Language, Node, Parser

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "azrdp"
CATALOGUE = REPO / "tests" / "data" / "ps51-cmdlets-subset.json"
REGEN = "python tests/data/regen_ps51_subset.py <path to ps51-cmdlets.json>"
INCLUDE = re.compile(r"^#\s*azrdp-include:\s*(\S+)\s*$", re.M)

# Rule id -> why it exists (the docs list the same rules with their sources).
RULES: Mapping[str, str] = {
    "parse": "The script must parse: a parse error is a script that never runs.",
    "ascii": "Scripts are ASCII: Run Command and the 5.1 console code page mangle other bytes.",
    "ps7": "PowerShell 6/7-only syntax, cmdlets, parameters or variables do not exist in 5.1.",
    "forbidden": "Code from strings (Invoke-Expression) and prompts (Read-Host...) have no place "
    "in a Run Command script: there is no console, a prompt hangs until the 90-minute limit.",
    "command": "Every command is a script function or a Windows PowerShell 5.1 / Server 2016 cmdlet.",
    "alias": "Aliases differ between hosts and versions (`sc` is Set-Content, not sc.exe).",
    "parameter": "Every named parameter is one the command documents, spelled in full: an unknown "
    "name fails binding, an abbreviation breaks when a parameter is added, and a simple "
    "function silently puts what it does not know into $args.",
    "external": "External programs are allowed only from EXTERNAL_PROGRAMS.",
    "array-wrap": "@() does not unwrap a collection a command emitted as one object "
    "(PowerShell#4257): @(F) of a function returning `, $list` is a one-element array.",
    "param-assign": "Variable names are case-insensitive: assigning to a typed parameter's name "
    "coerces the value to its type ($only = @(...) with [string]$Only makes a string).",
    "array-return": "`return $array` enumerates it: the caller gets object[] (one item: a scalar, "
    "none: $null). Return collections with the unary comma.",
    "array-test": "`-is [byte[]]` / `-is [array]` on a script function's result tests what the "
    "pipeline made of it, not what the function built.",
    "count-scalar": ".Count on a scalar or $null throws under Set-StrictMode -Version 2+ "
    "(PowerShell#2798): count only what was built as a collection in that scope.",
    "service-wait": "Start/Stop/Restart-Service wait without a bound while a service is pending "
    "(DoWaitForStatus: 'waits forever'); a hung service holds Run Command for 90 minutes.",
    "sddl-sacl": "ObjectSecurity.SetSecurityDescriptorSddlForm(sddl) sets AccessControlSections.All:"
    " the audit section too, so an SDDL without S: wipes the SACL.",
    "fips": "Under the FIPS algorithm policy .NET Framework before 4.8 (Server 2016 ships 4.6.2, and "
    "powershell.exe keeps the old behaviour) throws from MD5, the *Managed hashes and ciphers: create "
    "them only inside a try whose catch falls back instead of reporting an error.",
}

# External programs the scripts may start, by file name (never through an alias or a path).
EXTERNAL_PROGRAMS: Mapping[str, str] = {
    "sc.exe": "service configuration (start type, account) where Set-Service has no parameter",
    "reg.exe": "registry key exports for backups",
    "icacls.exe": "ACL backups (/save) of MachineKeys entries",
    "takeown.exe": "ownership of one key file SYSTEM is locked out of (never /r, never /a)",
    "certutil.exe": "re-links a restored certificate with its private key (-repairstore)",
}

FORBIDDEN_COMMANDS: Mapping[str, str] = {
    "invoke-expression": "runs a string as code",
    "read-host": "prompts for input",
    "get-credential": "prompts for a credential",
    "pause": "prompts (a 5.1 function around Read-Host)",
    "out-gridview": "opens a window",
    "show-command": "opens a window",
}

PS7_COMMANDS: Mapping[str, str] = {
    "test-json": "6.1",
    "get-error": "7.0",
    "join-string": "7.0",
    "get-uptime": "6.0",
    "remove-service": "6.0",
    "convertfrom-markdown": "6.1",
}
# (cmdlet, parameter) pairs that exist only in PowerShell 6 or 7.
PS7_PARAMETERS: Mapping[tuple[str, str], str] = {
    ("foreach-object", "parallel"): "7.0",
    ("foreach-object", "throttlelimit"): "7.0",
    ("foreach-object", "asjob"): "7.0",
    ("convertfrom-json", "ashashtable"): "6.0",
    ("convertfrom-json", "depth"): "6.2",
    ("convertfrom-json", "noenumerate"): "7.0",
    ("convertto-json", "asarray"): "6.2",
    ("convertto-json", "enumsasstrings"): "6.2",
    ("convertto-json", "escapehandling"): "6.2",
    ("get-content", "asbytestream"): "6.0",
    ("set-content", "asbytestream"): "6.0",
    ("add-content", "asbytestream"): "6.0",
    ("invoke-webrequest", "skipcertificatecheck"): "6.0",
    ("invoke-restmethod", "skipcertificatecheck"): "6.0",
    ("select-object", "skipindex"): "6.2",
    ("get-childitem", "followsymlink"): "6.0",
}
PS7_VARIABLES = frozenset({"iswindows", "islinux", "ismacos", "iscoreclr"})
# Classes whose constructor (or Create) throws InvalidOperationException when the FIPS algorithm
# policy is on, in .NET Framework 4.7.2 and earlier and in apps targeting it (Learn: "Retargeting
# changes for migration to .NET Framework 4.8.x": MD5Cng, MD5CryptoServiceProvider, RIPEMD160Managed,
# SHA*Managed, AesManaged, RijndaelManaged, RC2CryptoServiceProvider); MD5.Create() and
# HashAlgorithm.Create('MD5') make an MD5CryptoServiceProvider, Get-FileHash -Algorithm MD5 too.
FIPS_TYPES = frozenset(
    {
        "md5",
        "md5cryptoserviceprovider",
        "md5cng",
        "ripemd160",
        "ripemd160managed",
        "sha1managed",
        "sha256managed",
        "sha384managed",
        "sha512managed",
        "aesmanaged",
        "rijndaelmanaged",
        "rc2cryptoserviceprovider",
        "hmacmd5",
        "hmacripemd160",
    }
)
FIPS_NAMES = frozenset({"md5", "ripemd160", "mactripledes", "system.security.cryptography.md5"})
# Service cmdlets that wait for the state they ask for (PowerShell's Service.cs DoWaitForStatus).
SERVICE_WAITERS = ("start-service", "stop-service", "restart-service", "suspend-service", "resume-service")

# Methods whose .NET return type is always an array or a collection.
ARRAY_METHODS = frozenset(
    {
        "split",
        "tochararray",
        "getbytes",
        "readalllines",
        "readallbytes",
        "getfiles",
        "getdirectories",
        "getvaluenames",
        "getsubkeynames",
        "getaccessrules",
        "getauditrules",
        "toarray",
        "frombase64string",
    }
)
# Methods that may return an array (RegistryKey.GetValue: REG_BINARY is byte[], REG_MULTI_SZ string[]).
MAYBE_ARRAY_METHODS = frozenset({"getvalue"})
AUTOMATIC_KINDS = {"args": "list", "psboundparameters": "dict", "matches": "dict", "error": "list"}

# Expression nodes that only wrap one child.
WRAPPERS = frozenset(
    {
        "pipeline",
        "pipeline_chain",
        "logical_expression",
        "bitwise_expression",
        "comparison_expression",
        "additive_expression",
        "multiplicative_expression",
        "format_expression",
        "range_expression",
        "array_literal_expression",
        "unary_expression",
        "parenthesized_expression",
        "argument_expression",
        "logical_argument_expression",
        "bitwise_argument_expression",
        "comparison_argument_expression",
        "additive_argument_expression",
        "multiplicative_argument_expression",
        "format_argument_expression",
        "range_argument_expression",
        "command_name_expr",
        "script_parameter_default",
        "left_assignment_expression",
    }
)

# The grammar reads a numeric range standing alone (`1..3`) as a command name.
NUMERIC_RANGE = re.compile(r"-?\d+\.\.-?\d+")
LIST, DICT, COLLECTION, MAYBE, SCALAR, UNKNOWN = "list", "dict", "collection", "maybe", "scalar", "unknown"
COUNTABLE = frozenset({LIST, DICT, COLLECTION})

_PARSER = Parser(Language(tsp.language()))


@dataclass(frozen=True, order=True)
class Violation:
    file: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.message}"


# --- the catalogue ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cmdlet:
    name: str
    parameters: Mapping[str, str]  # lower-case name or alias -> canonical name

    def has(self, parameter: str) -> bool:
        return parameter.lower() in self.parameters


@dataclass(frozen=True)
class Catalogue:
    cmdlets: Mapping[str, Cmdlet]  # lower-case name -> cmdlet
    aliases: Mapping[str, str]  # lower-case alias -> command
    common: Mapping[str, str]  # lower-case common parameter or alias -> canonical name

    @staticmethod
    def load(path: Path = CATALOGUE) -> Catalogue:
        data = json.loads(path.read_text(encoding="utf-8"))
        common_aliases = data["commonAliases"]
        should_process = {"WhatIf", "Confirm"}
        common = {n.lower(): n for n in data["commonParameters"] if n not in should_process}
        common.update({a.lower(): n for a, n in common_aliases.items() if n not in should_process})
        cmdlets = {}
        for name, entry in data["cmdlets"].items():
            params: dict[str, str] = {}
            for pname, aliases in entry["parameters"].items():
                params[pname.lower()] = pname
                params.update({a.lower(): pname for a in aliases})
                if pname in should_process:  # recorded per cmdlet: only where it supports ShouldProcess
                    params.update({a.lower(): pname for a, n in common_aliases.items() if n == pname})
            cmdlets[name.lower()] = Cmdlet(name, params)
        aliases = {a.lower(): n for a, n in data["aliases"].items()}
        return Catalogue(cmdlets, aliases, common)


@cache
def catalogue() -> Catalogue:
    return Catalogue.load()


# --- syntax helpers -----------------------------------------------------------------------------


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def named(node: Node) -> list[Node]:
    return [c for c in node.named_children if c.type != "comment"]


def core(node: Node) -> Node:
    """The expression a chain of single-child wrappers stands for."""
    while node.type in WRAPPERS:
        kids = named(node)
        if len(kids) != 1 or any(not c.is_named and c.type == "," for c in node.children):
            return node
        node = kids[0]
    return node


def line_of(node: Node) -> int:
    """The line of the node's first visible character (an ERROR node may start with a newline)."""
    body = text(node)
    return node.start_point[0] + 1 + body[: len(body) - len(body.lstrip())].count("\n")


def var_name(node: Node) -> str:
    """`$Name`, `${Name}`, `$script:Name`, `@Name` -> `name`; `$env:X` -> `env:x`."""
    raw = text(node).lstrip("$@").strip("{}").lower()
    for scope in ("script:", "local:", "global:", "private:"):
        if raw.startswith(scope):
            return raw[len(scope) :]
    return raw


def type_name(type_literal: Node) -> str:
    return text(type_literal).strip()[1:-1].strip().lower()


def type_kind(name: str | None) -> str:
    if name is None:
        return UNKNOWN
    name = name.lower().removeprefix("system.")
    if name.endswith("[]") or name in ("array", "collections.arraylist", "collections.ilist"):
        return LIST
    if name.startswith(
        (
            "collections.generic.list[",
            "collections.generic.hashset[",
            "collections.generic.queue[",
            "collections.generic.stack[",
            "collections.objectmodel.collection[",
            "collections.icollection",
            "collections.generic.ilist[",
        )
    ):
        return LIST
    if name in ("hashtable", "collections.hashtable", "ordered", "collections.specialized.ordereddictionary"):
        return DICT
    if name.startswith(("collections.generic.dictionary[", "collections.idictionary")):
        return DICT
    if name in ("string", "int", "long", "bool", "datetime", "char", "byte", "double", "switch", "guid"):
        return SCALAR
    return UNKNOWN


def join(kinds: Iterable[str]) -> str:
    found = set(kinds)
    if not found:
        return UNKNOWN
    if len(found) == 1:
        return found.pop()
    if found <= COUNTABLE:
        return COLLECTION
    if found <= {LIST, MAYBE, COLLECTION}:
        return MAYBE
    return UNKNOWN


# --- the model of a script ----------------------------------------------------------------------


@dataclass
class Param:
    name: str
    type: str | None
    switch: bool
    aliases: frozenset[str]
    node: Node


@dataclass
class Scope:
    node: Node
    parent: Scope | None
    params: dict[str, Param] = field(default_factory=dict)
    order: list[Param] = field(default_factory=list)
    assigned: dict[str, list[Node]] = field(default_factory=dict)  # name -> values of `=`
    declared: dict[str, str] = field(default_factory=dict)  # name -> [type] of `[type]$x = ...`
    loop_vars: set[str] = field(default_factory=set)

    def lookup(self, name: str) -> Scope | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.params or name in scope.assigned or name in scope.loop_vars:
                return scope
            scope = scope.parent
        return None


@dataclass
class Function:
    name: str
    file: str
    node: Node
    scope: Scope
    advanced: bool
    returns: list[tuple[Node, bool]] = field(default_factory=list)  # (value, with the unary comma)
    invoked_params: set[str] = field(default_factory=set)  # parameters run with `& $P`


@dataclass
class Unit:
    name: str
    source: bytes
    root: Node


class Model:
    """Functions and script-level variables of a group of composed scripts."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self.units = units
        self.functions: dict[str, Function] = {}
        self.script = Scope(units[0].root, None)
        self.scopes: dict[int, Scope] = {}  # function_statement node id -> its scope
        self._return_kinds: dict[str, str] = {}
        for unit in units:
            block = next((c for c in named(unit.root) if c.type == "param_block"), None)
            if block is not None:
                self._params(self.script, block)
            self._collect(unit, unit.root, self.script)

    # collection ----------------------------------------------------------------------------

    def _params(self, scope: Scope, block: Node) -> bool:
        """Adds the parameters of a param block; True when it makes an advanced function."""
        advanced = False
        for node in walk(block):
            if node.type == "attribute" and text(node).lower().startswith(("[cmdletbinding", "[parameter")):
                advanced = True
        for sp in (n for n in walk(block) if n.type == "script_parameter"):
            var = next((c for c in named(sp) if c.type == "variable"), None)
            if var is None:
                continue
            ptype = None
            aliases: set[str] = set()
            for attr in (n for n in walk(sp) if n.type == "attribute"):
                literal = next((c for c in named(attr) if c.type == "type_literal"), None)
                if literal is not None:
                    ptype = type_name(literal)
                elif text(attr).lower().startswith("[alias("):
                    aliases |= {
                        text(s).strip("'\"").lower()
                        for s in walk(attr)
                        if s.type in ("verbatim_string_characters", "expandable_string_literal")
                    }
            param = Param(text(var).lstrip("$"), ptype, ptype == "switch", frozenset(aliases), var)
            scope.params[var_name(var)] = param
            scope.order.append(param)
        return advanced

    def _collect(self, unit: Unit, node: Node, scope: Scope, in_block: bool = False) -> None:
        """Records assignments, loop variables, returns and `& $x` calls of `scope`.

        Nested script blocks count as the same scope (ForEach-Object and Where-Object run them
        there), but a `return` inside one returns from the block, not from the function.
        """
        for child in node.children:
            if child.type == "function_statement":
                self._function(unit, child, scope)
                continue
            if child.type == "assignment_expression":
                self._assignment(child, scope)
            elif child.type == "foreach_statement":
                var = next((c for c in named(child) if c.type == "variable"), None)
                if var is not None:
                    scope.loop_vars.add(var_name(var))
            elif (
                child.type == "flow_control_statement"
                and not in_block
                and text(child).lower().startswith("return")
            ):
                fn = self._enclosing(scope)
                value = next((c for c in named(child) if c.type == "pipeline"), None)
                if fn is not None and value is not None:
                    inner = core(value)
                    comma = inner.type == "expression_with_unary_operator" and text(inner).startswith(",")
                    fn.returns.append((value, comma))
            elif child.type == "command":
                self._invocation(child, scope)
            self._collect(unit, child, scope, in_block or child.type == "script_block_expression")

    def _enclosing(self, scope: Scope) -> Function | None:
        return next((f for f in self.functions.values() if f.scope is scope), None)

    def _function(self, unit: Unit, node: Node, parent: Scope) -> None:
        name_node = next(c for c in named(node) if c.type == "function_name")
        scope = Scope(node, parent)
        advanced = False
        for block in (n for n in named(node) if n.type == "function_parameter_declaration"):
            advanced |= self._params(scope, block)
        body = next((c for c in named(node) if c.type == "script_block"), None)
        if body is not None:
            block = next((c for c in named(body) if c.type == "param_block"), None)
            if block is not None:
                advanced |= self._params(scope, block)
        fn = Function(text(name_node), unit.name, node, scope, advanced)
        self.functions[fn.name.lower()] = fn
        self.scopes[node.id] = scope
        if body is not None:
            self._collect(unit, body, scope)

    def _assignment(self, node: Node, scope: Scope) -> None:
        left = next((c for c in named(node) if c.type == "left_assignment_expression"), None)
        op = next((c for c in named(node) if c.type == "assignement_operator"), None)
        value = node.child_by_field_name("value")
        if left is None or value is None:
            return
        target = core(left)
        declared = None
        if target.type == "expression_with_unary_operator":
            target = next((c for c in named(target) if c.type == "cast_expression"), target)
        if target.type == "cast_expression":
            literal = next((c for c in named(target) if c.type == "type_literal"), None)
            declared = type_name(literal) if literal is not None else None
            target = core(named(target)[-1])
        if target.type != "variable":
            return
        name = var_name(target)
        if declared is not None:
            scope.declared[name] = declared
        if op is not None and text(op) == "=":
            scope.assigned.setdefault(name, []).append(value)
        else:
            scope.assigned.setdefault(name, [])

    def _invocation(self, node: Node, scope: Scope) -> None:
        operator = next((c for c in node.children if c.type == "command_invokation_operator"), None)
        name = node.child_by_field_name("command_name")
        if operator is None or name is None:
            return
        target = core(name)
        if target.type == "path_command_name":
            target = named(target)[0] if named(target) else target
        fn = self._enclosing(scope)
        param = (
            fn.scope.params.get(var_name(target)) if fn is not None and target.type == "variable" else None
        )
        if fn is not None and param is not None and param.type != "scriptblock":
            fn.invoked_params.add(var_name(target))

    # queries -------------------------------------------------------------------------------

    def scope_of(self, node: Node) -> Scope:
        current: Node | None = node
        while current is not None:
            if current.type == "function_statement" and current.id in self.scopes:
                return self.scopes[current.id]
            current = current.parent
        return self.script

    def comma_function(self, name: str) -> Function | None:
        fn = self.functions.get(name.lower())
        return fn if fn is not None and any(comma for _, comma in fn.returns) else None

    def return_kind(self, fn: Function, seen: frozenset[str]) -> str:
        key = fn.name.lower()
        if key in seen:
            return UNKNOWN
        if key in self._return_kinds:
            return self._return_kinds[key]
        kinds = []
        for value, comma in fn.returns:
            if comma:
                kinds.append(self.kind(named(core(value))[-1], fn.scope, seen | {key}))
            else:
                # Hashtables and scalars come out as they are; anything else may be enumerated.
                kind = self.kind(value, fn.scope, seen | {key})
                kinds.append(kind if kind in (DICT, SCALAR) else UNKNOWN)
        result = join(kinds)
        if not seen:  # a result cut short by recursion is not kept
            self._return_kinds[key] = result
        return result

    def var_kind(self, name: str, scope: Scope, seen: frozenset[str]) -> str:
        if name in AUTOMATIC_KINDS:
            return AUTOMATIC_KINDS[name]
        if name in ("null", "true", "false") or name.startswith("env:"):
            return SCALAR
        owner = scope.lookup(name)
        if owner is None:
            return UNKNOWN
        if name in owner.params and owner.params[name].type is not None:
            return type_kind(owner.params[name].type)
        if name in owner.declared:
            return type_kind(owner.declared[name])
        key = f"${id(owner)}:{name}"
        if key in seen:
            return UNKNOWN
        kinds = [self.kind(v, owner, seen | {key}) for v in owner.assigned.get(name, [])]
        if name in owner.params or name in owner.loop_vars:
            kinds.append(UNKNOWN)
        return join(kinds)

    def command_kind(self, node: Node, scope: Scope, seen: frozenset[str]) -> str:
        name = command_name(node)
        if name is None:
            return UNKNOWN
        lowered = name.lower()
        if NUMERIC_RANGE.fullmatch(name):
            return LIST
        if lowered == "new-object":
            call = parse_call(node)
            type_arg = call.named_value("typename") or (call.positional[0] if call.positional else None)
            return type_kind(text(type_arg).strip("'\"")) if type_arg is not None else UNKNOWN
        fn = self.functions.get(lowered)
        if fn is not None:
            return self.return_kind(fn, seen)
        return UNKNOWN

    def kind(self, node: Node, scope: Scope, seen: frozenset[str] = frozenset()) -> str:
        node = core(node)
        kids = named(node)
        if node.type == "array_expression":
            return LIST
        if node.type == "hash_literal_expression":
            return DICT
        if node.type == "array_literal_expression":
            return LIST  # a binary comma (core() stops only there)
        if node.type == "expression_with_unary_operator":
            if text(node).startswith(",") or re.match(r"-[ic]?split\b", text(node), re.I):
                return LIST
            cast = next((c for c in kids if c.type == "cast_expression"), None)
            return self.kind(cast, scope, seen) if cast is not None else SCALAR
        if node.type == "cast_expression":
            literal = next((c for c in kids if c.type == "type_literal"), None)
            if literal is None:
                return UNKNOWN
            return type_kind(type_name(literal))
        if node.type == "invokation_expression":
            member = next((c for c in kids if c.type == "member_name"), None)
            method = text(member).lower() if member is not None else ""
            if kids and kids[0].type == "type_literal" and method == "new":
                return type_kind(type_name(kids[0]))
            if method in ARRAY_METHODS:
                return LIST
            if method in MAYBE_ARRAY_METHODS:
                return MAYBE
            return UNKNOWN
        if node.type == "member_access":
            member = next((c for c in kids if c.type == "member_name"), None)
            return LIST if member is not None and text(member).lower() in ("keys", "values") else UNKNOWN
        if node.type == "variable":
            return self.var_kind(var_name(node), scope, seen)
        operators = {
            text(c).lower() for c in node.children if c.type == "comparison_operator" or not c.is_named
        }
        if node.type == "comparison_expression" and operators & {"-split", "-csplit", "-isplit"}:
            return LIST
        if node.type == "range_expression" and ".." in operators:
            return LIST
        if node.type == "additive_expression" and "+" in operators and kids:
            left = self.kind(kids[0], scope, seen)
            return LIST if left == LIST else UNKNOWN  # array + anything is an array
        if node.type in ("string_literal", "integer_literal", "real_literal", "expandable_string_literal"):
            return SCALAR
        if node.type == "command":
            return self.command_kind(node, scope, seen)
        if node.type == "pipeline_chain" and kids and kids[-1].type == "command":
            return self.command_kind(kids[-1], scope, seen)
        return UNKNOWN

    def function_results(self, node: Node, scope: Scope) -> list[Function]:
        """The script functions whose output `node` (a variable or a call) holds."""
        node = core(node)
        if node.type == "command":
            fn = self.functions.get((command_name(node) or "").lower())
            return [fn] if fn is not None else []
        if node.type != "variable":
            return []
        owner = scope.lookup(var_name(node))
        if owner is None:
            return []
        found = []
        for value in owner.assigned.get(var_name(node), []):
            found += self.function_results(value, owner)
        return found


# --- calls --------------------------------------------------------------------------------------


@dataclass
class Call:
    node: Node
    named: list[tuple[str, Node, Node | None]] = field(default_factory=list)  # (name, node, value)
    positional: list[Node] = field(default_factory=list)
    splats: list[Node] = field(default_factory=list)

    def named_value(self, name: str) -> Node | None:
        return next((v for n, _, v in self.named if n.lower() == name), None)

    def has(self, name: str) -> bool:
        return any(n.lower() == name for n, _, _ in self.named)


def command_name(node: Node) -> str | None:
    name = node.child_by_field_name("command_name")
    if name is None:
        return None
    target = core(name)
    if target.type == "command_name":
        return text(target)
    if target.type == "string_literal" and "$" not in text(target):
        return text(target).strip("'\"")
    return None


def parse_call(node: Node, switches: Iterable[str] = ()) -> Call:
    """Named parameters (with their values), positional arguments and splats of a command.

    A named parameter takes the next argument as its value unless it is in `switches` or its value
    is attached (`-Name:value`); for cmdlets the split does not matter (positions are not checked).
    """
    call = Call(node)
    elements = node.child_by_field_name("command_elements")
    if elements is None:
        return call
    # Arguments are separated by blanks; `-Name:value` and `$x.Method(...)` are single arguments.
    groups: list[list[Node]] = []
    current: list[Node] = []
    for item in elements.children:
        if item.type in ("comment", "redirection"):
            continue
        if item.type == "command_argument_sep" and text(item) != ":":
            if current:
                groups.append(current)
            current = []
        else:
            current.append(item)
    if current:
        groups.append(current)
    switch_set = {s.lower() for s in switches}
    i = 0
    while i < len(groups):
        first = groups[i][0]
        if first.type == "command_parameter":
            name = text(first).lstrip("-").rstrip(":")
            value = None
            if len(groups[i]) > 1:
                value = groups[i][2] if len(groups[i]) > 2 else None
            elif (
                name.lower() not in switch_set
                and i + 1 < len(groups)
                and groups[i + 1][0].type != "command_parameter"
            ):
                value = groups[i + 1][0]
                i += 1
            call.named.append((name, first, value))
        else:
            inner = core(first)
            if inner.type == "variable" and text(inner).startswith("@"):
                call.splats.append(inner)
            else:
                call.positional.append(first)
        i += 1
    return call


# --- the checker --------------------------------------------------------------------------------


class Checker:
    def __init__(self, units: Sequence[Unit], report: Sequence[str], cat: Catalogue) -> None:
        self.model = Model(units)
        self.units = [u for u in units if u.name in report]
        self.cat = cat
        self.out: list[Violation] = []
        self.wait_helper: str | None = None

    def add(self, unit: Unit, node: Node | int, rule: str, message: str) -> None:
        line = node if isinstance(node, int) else line_of(node)
        self.out.append(Violation(unit.name, line, rule, message))

    def run(self) -> list[Violation]:
        for unit in self.units:
            self.check_bytes(unit)
            self.check_syntax(unit)
            for node in walk(unit.root):
                scope = self.model.scope_of(node)
                if node.type == "command":
                    self.check_command(unit, node, scope)
                elif node.type == "array_expression":
                    self.check_array_wrap(unit, node)
                elif node.type == "comparison_expression":
                    self.check_array_test(unit, node, scope)
                elif node.type == "member_access":
                    self.check_count(unit, node, scope)
                elif node.type == "argument_list" and node.parent and node.parent.type == "command_elements":
                    # `$x.Method(...)` as a command argument: the grammar splits it in two.
                    before = core(node.prev_sibling) if node.prev_sibling is not None else None
                    if before is not None and before.type == "member_access":
                        self.check_method(unit, before, node)
                elif node.type == "invokation_expression":
                    args = next((c for c in named(node) if c.type == "argument_list"), None)
                    self.check_method(unit, node, args)
                    self.check_fips(unit, node)
                elif node.type == "variable" and var_name(node) in PS7_VARIABLES:
                    self.add(
                        unit, node, "ps7", f"{text(node)} does not exist in 5.1 (strict mode throws on it)"
                    )
            self.check_param_assignments(unit)
            self.check_returns(unit)
        return sorted(set(self.out))

    # rule 8: bytes and syntax --------------------------------------------------------------

    def check_bytes(self, unit: Unit) -> None:
        for number, line in enumerate(unit.source.split(b"\n"), 1):
            if any(b > 0x7E or (b < 0x20 and b not in (9, 13)) for b in line):
                self.add(unit, number, "ascii", "non-ASCII or control byte")

    def masked_lines(self, unit: Unit) -> list[str]:
        """The source with comments and string literals blanked, per line."""
        data = bytearray(unit.source)
        for node in walk(unit.root):
            if node.type in ("comment", "string_literal"):
                for i in range(node.start_byte, node.end_byte):
                    if data[i] not in (10, 13):
                        data[i] = 32
        return data.decode("utf-8", "replace").split("\n")

    def check_syntax(self, unit: Unit) -> None:
        masked = self.masked_lines(unit)
        ps7 = {
            r"\?\?=?": "the null-coalescing operator ??/??= is PowerShell 7",
            r"[\w})\]]\?\.|[\w})\]]\?\[": "null-conditional ?. / ?[] is PowerShell 7 (5.1 reads a "
            "variable named `x?`)",
            r"(?<![|\s])\s+\?\s+[^|{]*\s:\s": "the ternary operator ?: is PowerShell 7",
        }
        flagged: set[int] = set()
        for number, line in enumerate(masked, 1):
            for pattern, message in ps7.items():
                if re.search(pattern, line):
                    self.add(unit, number, "ps7", message)
                    flagged.add(number)
                    break
        for node in walk(unit.root):
            message = None
            if node.type in ("&&", "||"):
                message = "pipeline chain operators && and || are PowerShell 7"
            elif node.type == "ternary_expression":
                message = "the ternary operator ?: is PowerShell 7"
            elif node.type in ("named_block", "ERROR") and re.match(r"\s*clean\s*\{", text(node), re.I):
                message = "the clean {} block is PowerShell 7.3"
            if message is not None and line_of(node) not in flagged:
                self.add(unit, node, "ps7", message)
                flagged.add(line_of(node))
            elif (node.type == "ERROR" or node.is_missing) and line_of(node) not in flagged:
                what = f"missing {node.type!r}" if node.is_missing else f"near {text(node)[:40]!r}"
                self.add(unit, node, "parse", f"does not parse as PowerShell: {what}")
                flagged.add(line_of(node))

    # rule 1 (and 6, 8): commands -----------------------------------------------------------

    def check_command(self, unit: Unit, node: Node, scope: Scope) -> None:
        operator = next((c for c in node.children if c.type == "command_invokation_operator"), None)
        name_node = node.child_by_field_name("command_name")
        if name_node is None:
            return
        target = core(name_node)
        if target.type == "path_command_name" and named(target):
            target = named(target)[0]
        dot = operator is not None and text(operator) == "."
        if target.type == "variable" or target.type == "script_block_expression":
            self.check_dynamic(unit, node, target, scope, dot)
            return
        name = command_name(node)
        if name is None:
            self.add(
                unit, node, "command", f"a command name the checker cannot read: {text(name_node)[:40]!r}"
            )
            return
        lowered = name.lower()
        if NUMERIC_RANGE.fullmatch(name):
            return
        if dot:
            self.add(unit, node, "command", f"dot-sources {name}: Run Command sends one script")
            return
        if "\\" in name or "/" in name:
            self.add(unit, node, "command", f"runs {name} by path; name it in EXTERNAL_PROGRAMS instead")
            return
        if lowered in EXTERNAL_PROGRAMS:
            return
        if re.search(r"\.(exe|com|cmd|bat|ps1)$", lowered):
            self.add(unit, node, "external", f"{name} is not in EXTERNAL_PROGRAMS (ps51_rules.py)")
            return
        if lowered in FORBIDDEN_COMMANDS:
            self.add(unit, node, "forbidden", f"{name} {FORBIDDEN_COMMANDS[lowered]}")
            return
        if lowered == "clean" and any(c.type == "script_block_expression" for c in walk(node)):
            self.add(unit, node, "ps7", "the clean {} block is PowerShell 7.3")
            return
        fn = self.model.functions.get(lowered)
        if fn is not None:
            self.check_function_call(unit, node, fn, scope)
            return
        if lowered in self.cat.aliases:
            self.add(
                unit, node, "alias", f"{name} is an alias of {self.cat.aliases[lowered]}; write the command"
            )
            return
        if lowered in PS7_COMMANDS:
            self.add(unit, node, "ps7", f"{name} is PowerShell {PS7_COMMANDS[lowered]}+")
            return
        cmdlet = self.cat.cmdlets.get(lowered)
        if cmdlet is None:
            self.add(
                unit,
                node,
                "command",
                f"{name} is neither a function of the scripts nor a Windows PowerShell 5.1 / Server 2016 "
                f"cmdlet in tests/data/ps51-cmdlets-subset.json (if it is one, run {REGEN})",
            )
            return
        call = parse_call(node)
        self.check_cmdlet_parameters(unit, call, cmdlet)
        self.check_splats(unit, call, scope, cmdlet.name, None)
        self.check_service_wait(unit, call, cmdlet)
        self.check_fips_command(unit, call, cmdlet)

    def check_dynamic(self, unit: Unit, node: Node, target: Node, scope: Scope, dot: bool) -> None:
        if target.type == "script_block_expression":
            return
        name = var_name(target)
        owner = scope.lookup(name)
        if owner is not None and name in owner.params and owner.params[name].type == "scriptblock":
            return
        if (
            owner is not None
            and owner.assigned.get(name)
            and all(core(v).type == "script_block_expression" for v in owner.assigned[name])
        ):
            return
        fn = next((f for f in self.model.functions.values() if f.scope is owner), None)
        if fn is not None and name in fn.invoked_params and not dot:
            return  # every call passes a literal from EXTERNAL_PROGRAMS (checked at the calls)
        self.add(unit, node, "command", f"runs {text(target)}, which the checker cannot resolve")

    def resolve(self, name: str, options: Mapping[str, str]) -> tuple[str | None, list[str]]:
        """(canonical name, []) for an exact match, else (None, the parameters it abbreviates)."""
        lowered = name.lower()
        if lowered in options:
            return options[lowered], []
        return None, sorted({v for k, v in options.items() if k.startswith(lowered)})

    def parameter_error(
        self, unit: Unit, node: Node, command: str, name: str, prefixes: list[str], fn: Function | None = None
    ) -> None:
        pair = (command.lower(), name.lower())
        if pair in PS7_PARAMETERS:
            self.add(unit, node, "ps7", f"{command} -{name} is PowerShell {PS7_PARAMETERS[pair]}+")
        elif prefixes:
            self.add(
                unit,
                node,
                "parameter",
                f"-{name} abbreviates {', '.join('-' + p for p in prefixes)} of {command}: write it in full",
            )
        elif fn is not None:
            common = "" if fn.advanced else " (common parameters need [CmdletBinding()])"
            self.add(unit, node, "parameter", f"{command}'s param block has no -{name}{common}")
        else:
            self.add(unit, node, "parameter", f"{command} has no parameter -{name} in Windows PowerShell 5.1")

    def check_cmdlet_parameters(self, unit: Unit, call: Call, cmdlet: Cmdlet) -> None:
        options = {**self.cat.common, **cmdlet.parameters}
        for name, node, _ in call.named:
            canonical, prefixes = self.resolve(name, options)
            if canonical is None:
                self.parameter_error(unit, node, cmdlet.name, name, prefixes)
        for arg in call.positional + [v for _, _, v in call.named if v is not None]:
            if core(arg).type in ("generic_token", "string_literal") and "utf8nobom" in text(arg).lower():
                self.add(unit, arg, "ps7", "the utf8NoBOM encoding is PowerShell 6+")

    def check_function_call(self, unit: Unit, node: Node, fn: Function, scope: Scope) -> None:
        options: dict[str, str] = {}
        for key, param in fn.scope.params.items():
            options[key] = param.name
            options.update({a: param.name for a in param.aliases})
        if fn.advanced:
            options = {**self.cat.common, **options}
        switches = [p.name for p in fn.scope.order if p.switch]
        call = parse_call(node, switches)
        bound = set()
        for name, pnode, value in call.named:
            canonical, prefixes = self.resolve(name, options)
            if canonical is None:
                self.parameter_error(unit, pnode, fn.name, name, prefixes, fn)
                continue
            bound.add(canonical.lower())
            if canonical.lower() in fn.invoked_params:
                literal = core(value) if value is not None else None
                program = text(literal).strip("'\"").lower() if literal is not None else ""
                if literal is None or literal.type != "string_literal" or program not in EXTERNAL_PROGRAMS:
                    self.add(
                        unit,
                        pnode,
                        "external",
                        f"{fn.name} runs its -{canonical}: pass a literal from EXTERNAL_PROGRAMS",
                    )
        for param in fn.invoked_params - bound:
            if fn.scope.params[param].type != "scriptblock":
                self.add(
                    unit, node, "external", f"{fn.name} runs its -{fn.scope.params[param].name}: name it"
                )
        free = [p for p in fn.scope.order if not p.switch and p.name.lower() not in bound]
        if len(call.positional) > len(free):
            where = "land in $args" if not fn.advanced else "fail binding"
            self.add(
                unit,
                node,
                "parameter",
                f"{fn.name} takes {len(free)} more positional argument(s), not {len(call.positional)}: "
                f"the others {where}",
            )
        self.check_splats(unit, call, scope, fn.name, options, fn)

    def check_splats(
        self,
        unit: Unit,
        call: Call,
        scope: Scope,
        command: str,
        options: Mapping[str, str] | None,
        fn: Function | None = None,
    ) -> None:
        for splat in call.splats:
            name = var_name(splat)
            owner = scope.lookup(name)
            values = [core(v) for v in owner.assigned.get(name, [])] if owner is not None else []
            if values and all(v.type == "hash_literal_expression" for v in values):
                cmdlet = self.cat.cmdlets.get(command.lower())
                allowed = dict(options or {})
                if cmdlet is not None:
                    allowed.update({**self.cat.common, **cmdlet.parameters})
                for value in values:
                    for key in (n for n in walk(value) if n.type == "key_expression"):
                        canonical, prefixes = self.resolve(text(key).strip("'\""), allowed)
                        if canonical is None:
                            self.parameter_error(unit, key, command, text(key).strip("'\""), prefixes, fn)
            elif values and all(v.type in ("array_expression", "array_literal_expression") for v in values):
                continue  # positional arguments
            else:
                self.add(
                    unit,
                    splat,
                    "parameter",
                    f"{text(splat)} splats what the checker cannot see: build it as a literal hashtable "
                    "in this scope",
                )

    # rule 6 ------------------------------------------------------------------------------

    def check_service_wait(self, unit: Unit, call: Call, cmdlet: Cmdlet) -> None:
        lowered = cmdlet.name.lower()
        if lowered in SERVICE_WAITERS:
            if not cmdlet.has("NoWait"):
                self.add(
                    unit,
                    call.node,
                    "service-wait",
                    f"{cmdlet.name} waits without a bound and has no -NoWait in 5.1: use "
                    "ServiceController.Start()/Stop() and WaitForStatus(status, timeout) in the one "
                    "bounded-wait helper",
                )
            elif not call.has("nowait"):
                self.add(
                    unit, call.node, "service-wait", f"{cmdlet.name} without -NoWait waits without a bound"
                )
        elif lowered == "set-service" and call.has("status"):
            self.add(unit, call.node, "service-wait", "Set-Service -Status waits without a bound")

    # rule 6 (WaitForStatus) and 7: method calls ----------------------------------------------

    def check_method(self, unit: Unit, node: Node, args: Node | None) -> None:
        member = next((c for c in named(node) if c.type == "member_name"), None)
        if member is None or args is None:
            return
        method = text(member).lower()
        listing = (
            next((c for c in named(args) if c.type == "argument_expression_list"), None) if args else None
        )
        count = len([c for c in named(listing) if c.type == "argument_expression"]) if listing else 0
        if method in ("setsecuritydescriptorsddlform", "setsecuritydescriptorbinaryform") and count == 1:
            self.add(
                unit,
                node,
                "sddl-sacl",
                f"{text(member)} with one argument also writes the audit section (SACL): pass "
                "[System.Security.AccessControl.AccessControlSections]'Access' (plus 'Owner' only when "
                "the owner changes)",
            )
        if method == "waitforstatus":
            if count < 2:
                self.add(unit, node, "service-wait", "WaitForStatus without a timeout waits without a bound")
            fn = self.model.scope_of(node)
            owner = next((f.name for f in self.model.functions.values() if f.scope is fn), "<script>")
            if self.wait_helper is None:
                self.wait_helper = owner
            elif owner != self.wait_helper:
                self.add(
                    unit,
                    node,
                    "service-wait",
                    f"bounded service waits go through one helper ({self.wait_helper}), not {owner}",
                )

    # FIPS: algorithms the policy refuses, outside a try ---------------------------------------

    def check_fips(self, unit: Unit, node: Node) -> None:
        kids = named(node)
        member = next((c for c in kids if c.type == "member_name"), None)
        if not kids or kids[0].type != "type_literal" or member is None:
            return
        cls = type_name(kids[0]).rsplit(".", 1)[-1]
        method = text(member).lower()
        args = next((c for c in kids if c.type == "argument_list"), None)
        first = text(args).strip("()").strip().strip("'\"").lower() if args is not None else ""
        refused = (cls in FIPS_TYPES and method in ("create", "new")) or (
            cls in ("hashalgorithm", "keyedhashalgorithm", "cryptoconfig")
            and method in ("create", "createfromname")
            and first in FIPS_NAMES
        )
        if refused:
            self.fips_outside_try(unit, node, text(node)[:50])

    def check_fips_command(self, unit: Unit, call: Call, cmdlet: Cmdlet) -> None:
        lowered = cmdlet.name.lower()
        value = None
        if lowered == "new-object":
            value = call.named_value("typename") or (call.positional[0] if call.positional else None)
            name = text(value).strip("'\"").lower().rsplit(".", 1)[-1] if value is not None else ""
            if name not in FIPS_TYPES:
                return
        elif lowered == "get-filehash":
            value = call.named_value("algorithm")
            if value is None or text(value).strip("'\"").lower() not in FIPS_NAMES:
                return
        else:
            return
        self.fips_outside_try(unit, call.node, text(call.node)[:50])

    def fips_outside_try(self, unit: Unit, node: Node, what: str) -> None:
        """The nearest try around `node` must handle the refusal as a case (fall back), not report
        it as an error: a catch that reads the exception ($_) loses the result on every FIPS VM."""
        current: Node | None = node
        while current is not None and current.parent is not None:
            if current.type == "statement_block" and current.parent.type == "try_statement":
                catches = [c for c in named(current.parent) if c.type == "catch_clauses"]
                body = " ".join(text(c) for c in catches).lower()
                if catches and "$_" not in body and "$psitem" not in body:
                    return
                break
            current = current.parent
        self.add(
            unit,
            node,
            "fips",
            f"{what}: throws under the FIPS algorithm policy (.NET Framework before 4.8); create it inside "
            "a try whose catch falls back (not one that reports $_ as an error)",
        )

    # rule 2 ------------------------------------------------------------------------------

    def check_array_wrap(self, unit: Unit, node: Node) -> None:
        statements = next((c for c in named(node) if c.type == "statement_list"), None)
        if statements is None:
            return
        for pipeline in (c for c in named(statements) if c.type == "pipeline"):
            chain = core(pipeline)
            commands = (
                [chain] if chain.type == "command" else [c for c in named(chain) if c.type == "command"]
            )
            for command in commands:
                fn = self.model.comma_function(command_name(command) or "")
                if fn is not None:
                    self.add(
                        unit,
                        node,
                        "array-wrap",
                        f"@({fn.name} ...): {fn.name} returns with the unary comma, so @() makes a "
                        "one-element array of its list (PowerShell#4257); use the result as it is",
                    )

    # rule 3 ------------------------------------------------------------------------------

    def check_param_assignments(self, unit: Unit) -> None:
        for node in walk(unit.root):
            target = None
            if node.type == "assignment_expression":
                left = next((c for c in named(node) if c.type == "left_assignment_expression"), None)
                target = core(left) if left is not None else None
            elif node.type == "foreach_statement":
                target = next((c for c in named(node) if c.type == "variable"), None)
            if target is None or target.type != "variable":
                continue
            param = self.model.scope_of(node).params.get(var_name(target))
            if param is not None and param.type:
                self.add(
                    unit,
                    node,
                    "param-assign",
                    f"{text(target)} is the parameter [{param.type}]${param.name} (names are "
                    f"case-insensitive): the value is coerced to [{param.type}]; use another name",
                )

    # rule 4 ------------------------------------------------------------------------------

    def check_returns(self, unit: Unit) -> None:
        for fn in self.model.functions.values():
            if fn.file != unit.name:
                continue
            for value, comma in fn.returns:
                if comma:
                    continue
                kind = self.model.kind(value, fn.scope)
                if kind in (LIST, COLLECTION, MAYBE):
                    what = "may be an array" if kind == MAYBE else "is a collection"
                    self.add(
                        unit,
                        value,
                        "array-return",
                        f"{fn.name} returns {text(value)[:40]}, which {what}, without the unary comma: "
                        "the caller gets its items (one: a scalar, none: $null); `return , $value`",
                    )

    def check_array_test(self, unit: Unit, node: Node, scope: Scope) -> None:
        operator = next((c for c in named(node) if c.type == "comparison_operator"), None)
        if operator is None or text(operator).lower() not in ("-is", "-isnot"):
            return
        kids = named(node)
        literal = core(kids[-1])
        if literal.type != "type_literal" or type_kind(type_name(literal)) != LIST:
            return
        functions = self.model.function_results(kids[0], scope)
        if functions:
            self.add(
                unit,
                node,
                "array-test",
                f"{text(node)[:50]} tests the result of {functions[0].name}, which the pipeline has "
                "already unrolled; return with the unary comma and drop the test",
            )

    # rule 5 ------------------------------------------------------------------------------

    def check_count(self, unit: Unit, node: Node, scope: Scope) -> None:
        member = next((c for c in named(node) if c.type == "member_name"), None)
        if member is None or text(member).lower() != "count":
            return
        base = named(node)[0]
        if self.model.kind(base, scope) not in COUNTABLE:
            self.add(
                unit,
                node,
                "count-scalar",
                f"{text(node)[:50]}: {text(base)[:40]} is not built as a collection in this scope, and "
                ".Count on a scalar or $null throws under strict mode; wrap it: @(...).Count",
            )


# --- entry points -------------------------------------------------------------------------------


def display_name(path: Path) -> str:
    resolved = path.resolve()
    try:
        return resolved.relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def parse_unit(name: str, source: str | bytes) -> Unit:
    data = source.encode("utf-8") if isinstance(source, str) else source
    root = _PARSER.parse(data).root_node
    return Unit(name, data, root)


def check_source(
    source: str | bytes,
    name: str = "<source>",
    companions: Sequence[tuple[str, str | bytes]] = (),
    cat: Catalogue | None = None,
) -> list[Violation]:
    """Violations in `source`; `companions` are (name, text) of the scripts composed with it."""
    units = [parse_unit(name, source)] + [parse_unit(n, t) for n, t in companions]
    return Checker(units, [name], cat or catalogue()).run()


def group_of(path: Path) -> list[Path]:
    """`path` and the scripts composed with it through `# azrdp-include:` lines (same folder)."""
    siblings = sorted(path.parent.glob("*.ps1"))
    edges: dict[Path, set[Path]] = {p: set() for p in siblings}
    for sibling in siblings:
        for included in INCLUDE.findall(sibling.read_text(encoding="utf-8", errors="replace")):
            other = sibling.parent / included
            if other in edges:
                edges[sibling].add(other)
                edges[other].add(sibling)
    group, todo = {path}, [path]
    while todo:
        for other in edges.get(todo.pop(), set()) - group:
            group.add(other)
            todo.append(other)
    return [path, *sorted(group - {path})]


def check_file(path: str | Path, cat: Catalogue | None = None) -> list[Violation]:
    path = Path(path)
    group = group_of(path.resolve())
    companions = [(display_name(p), p.read_bytes()) for p in group[1:]]
    return check_source(path.read_bytes(), display_name(path), companions, cat)


def check_paths(paths: Iterable[str | Path], cat: Catalogue | None = None) -> list[Violation]:
    return sorted(v for p in paths for v in check_file(p, cat))


def shipped_scripts(root: Path = PACKAGE) -> list[Path]:
    return sorted(root.rglob("*.ps1"))


def check_shipped(cat: Catalogue | None = None) -> list[Violation]:
    return check_paths(shipped_scripts(), cat)


def used_commands(paths: Iterable[str | Path]) -> set[str]:
    """Verb-Noun commands the scripts call that are not their own functions (as written)."""
    found: set[str] = set()
    for path in paths:
        group = group_of(Path(path).resolve())
        model = Model([parse_unit(str(p), p.read_bytes()) for p in group])
        for node in walk(model.units[0].root):
            if node.type == "command":
                name = command_name(node)
                if (
                    name
                    and re.fullmatch(r"[A-Za-z]+-[A-Za-z0-9]+", name)
                    and name.lower() not in model.functions
                ):
                    found.add(name)
    return found


def main(argv: Sequence[str]) -> int:
    paths = [Path(a) for a in argv] or shipped_scripts()
    violations = check_paths(paths)
    for violation in violations:
        print(violation)
    print(f"{len(violations)} violation(s) in {len(paths)} file(s)", file=sys.stderr)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
