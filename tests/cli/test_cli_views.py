"""The shared human views (azrdp/cli/views.py) as a user reads them, including at 80 columns."""

from __future__ import annotations

import copy
from typing import Any

from rich.console import Console

from azrdp.cli import views
from azrdp.cli.check import human_view as check_view
from azrdp.cli.repair import human_view as repair_view

LONG = "fDenyTSConnections is 1 in HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server, " * 2


def vm_doc(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "web01",
        "resourceGroup": "rg",
        "status": "blocked",
        "powerState": "running",
        "osType": "Windows",
        "provisioningState": "Succeeded",
        "agent": {"status": "Ready", "version": "2.7"},
        "network": {
            "port": 3389,
            "protocol": "Tcp",
            "source": "203.0.113.7",
            "publicIp": "20.1.2.3",
            "privateIp": "10.0.0.4",
            "nsgs": {"subnet": None, "nic": "nsg1"},
            "verdict": "denied",
            "allowedSources": [],
            "decidedBy": [],
        },
        "findings": [
            {"id": "no-public-ip", "severity": "info", "title": "I", "evidence": "e", "recommendation": "r"},
            {
                "id": "rdp-disabled",
                "severity": "blocker",
                "title": "T",
                "evidence": LONG,
                "recommendation": "R",
            },
        ],
        "error": None,
    }
    doc.update(extra)
    return doc


def render(view: Any, doc: dict[str, Any], width: int = 120) -> str:
    console = Console(record=True, width=width, no_color=True)
    view(doc, console)
    return str(console.export_text())


def check_doc(vms: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    blocked = sum(v["status"] == "blocked" for v in vms)
    return {
        "command": "check",
        "flow": {"port": 3389, "protocol": "Tcp", "source": "203.0.113.7"},
        "vms": vms,
        "summary": {"total": len(vms), "healthy": len(vms) - blocked, "blocked": blocked, "errors": 0},
        **extra,
    }


def test_summary_names_only_counts_that_are_not_zero() -> None:
    text = render(check_view, check_doc([vm_doc()]))
    assert "1 VM checked: 1 blocked." in text
    assert "0 " not in text.split("1 VM checked")[1].splitlines()[0]


def test_next_steps_carry_the_source_ip_and_suggest_diagnose() -> None:
    text = render(check_view, check_doc([vm_doc()]))
    next_part = text.split("Next:")[1]
    assert "azrdp repair web01 -g rg --source-ip 203.0.113.7 --dry-run" in next_part
    assert "azrdp diagnose web01 -g rg" in next_part


def test_blockers_come_before_info_and_wrap_under_their_column_at_80() -> None:
    text = render(check_view, check_doc([vm_doc()]), width=80)
    assert text.index("rdp-disabled") < text.index("no-public-ip")
    lines = [line for line in text.splitlines() if "Terminal" in line or "CurrentControlSet" in line]
    assert len(lines) >= 2  # the evidence wrapped
    starts = {line.index(line.strip("│ ")[0]) for line in lines}
    assert len(starts) == 1, lines  # every wrapped line starts in the same column
    assert all(len(line) <= 80 for line in text.splitlines())


def test_fleet_table_shows_private_only_vms_calmly() -> None:
    private = vm_doc(name="db01", status="healthy", findings=[])
    private["network"] = {**private["network"], "publicIp": None, "source": "Internet"}
    vms = [copy.deepcopy(private) for _ in range(3)] + [vm_doc()]
    text = render(check_view, check_doc(vms, flow={"port": 3389, "protocol": "Tcp", "source": "Internet"}))
    assert text.index("web01") < text.index("db01")  # blocked first
    assert "private only" in text
    assert "4 VMs checked: 1 blocked, 3 healthy." in text
    assert "azrdp repair -g rg --broken-only --dry-run" in text


def test_repair_view_uses_the_same_panel() -> None:
    step = {
        "id": "rdp-listener",
        "title": "Turn the RDP listener back on",
        "fixes": ["rdp-disabled"],
        "risk": "low",
        "changes": ["fDenyTSConnections: 1 -> 0"],
        "backup": "reg export",
        "notes": [],
        "refused": None,
        "status": "applied",
        "applied": True,
        "verified": True,
        "error": None,
    }
    vm = vm_doc(status="repaired", plan=[step], remainingFindings=[], applied=True, runId="0123456789ab")
    doc = {
        "command": "repair",
        "dryRun": False,
        "flow": {"source": "Internet"},
        "vms": [vm],
        "summary": {
            "total": 1,
            "repaired": 1,
            "healthy": 0,
            "planned": 0,
            "blocked": 0,
            "notVerified": 0,
            "errors": 0,
        },
    }
    text = render(repair_view, doc)
    assert "web01 (rg)  REPAIRED" in text
    assert "APPLIED  rdp-listener" in text and "verified" in text
    assert "1 VM: 1 repaired." in text
    assert "azrdp undo web01 -g rg --run-id 0123456789ab" in text
    rows = views.repair_rows(doc)
    assert [(r["check"], r["status"]) for r in rows] == [("rdp-disabled", "FIXED"), ("no-public-ip", "PASS")]
    assert list(rows[0]) == ["name", "resourceGroup", "check", "status", "severity", "detail"]


def test_every_table_status_is_documented() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "output.md").read_text(encoding="utf-8")
    section = text.split("### Table rows of check, diagnose and repair")[1].split("\n## ")[0]
    documented = {
        status
        for cell in re.findall(r"^\| ([^|]+) \|", section, re.MULTILINE)
        for status in re.findall(r"`([A-Z]+)`", cell)
    }
    assert documented == set(views.TABLE_STATUSES)
