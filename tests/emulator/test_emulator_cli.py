"""`azrdp emulator` commands, and the independent-script check: a separate process using only the SDK
and the exports printed by `azrdp emulator serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator import read_request_log

runner = CliRunner()


def test_scenarios_lists_builtins_as_json() -> None:
    result = runner.invoke(app, ["emulator", "scenarios", "-o", "json"])
    assert result.exit_code == 0, result.output
    names = [s["name"] for s in json.loads(result.stdout)["scenarios"]]
    assert "healthy" in names and "fleet:N[:groups]" in names


def test_scenarios_query() -> None:
    result = runner.invoke(
        app, ["emulator", "scenarios", "--query", "scenarios[?name=='linux'].name", "-o", "tsv"]
    )
    assert result.exit_code == 0
    assert result.stdout.strip() == "linux"


def test_serve_rejects_bad_input_with_usage_errors() -> None:
    unknown = runner.invoke(app, ["emulator", "serve", "--scenario", "nope"])
    assert unknown.exit_code == 2
    assert unknown.stdout == ""
    assert "error: Unknown scenario 'nope'" in unknown.stderr and "fix:" in unknown.stderr
    faults = runner.invoke(app, ["emulator", "serve", "--faults", "418:0.5"])
    assert faults.exit_code == 2
    assert "unknown kind '418'" in faults.stderr
    malformed = runner.invoke(app, ["emulator", "serve", "--scenario", "fleet:-3"])
    assert malformed.exit_code == 2 and "Bad fleet scenario" in malformed.stderr


INDEPENDENT_SCRIPT = textwrap.dedent(
    """
    import os
    from azure.core.exceptions import HttpResponseError, ResourceExistsError
    from azure.identity import DefaultAzureCredential
    from azure.mgmt.compute import ComputeManagementClient

    credential = DefaultAzureCredential()
    token = credential.get_token("https://management.azure.com/.default")
    assert token.token, "no token"
    options = dict(
        base_url=os.environ["AZRDP_ARM_ENDPOINT"],
        credential_scopes=["https://management.azure.com/.default"],
        connection_verify=os.environ["AZRDP_CA_BUNDLE"],
        polling_interval=0.05,
    )
    subscription = os.environ["AZURE_SUBSCRIPTION_ID"]
    compute = ComputeManagementClient(credential, subscription, **options)

    vms = list(compute.virtual_machines.list_all(status_only="true"))
    print("listed", len(vms))

    def ready(vm):
        codes = [s.code for s in vm.instance_view.statuses]
        return "PowerState/running" in codes
    target = next(vm for vm in vms if ready(vm))
    group = target.id.split("/")[4]
    view = compute.virtual_machines.instance_view(group, target.name)
    print("agent", view.vm_agent.statuses[0].display_status)

    body = {"commandId": "RunPowerShellScript", "script": ["hostname"]}
    if view.vm_agent.statuses[0].display_status != "Ready":
        raise SystemExit("picked a VM whose agent is not ready")
    poller = compute.virtual_machines.begin_run_command(group, target.name, body)
    try:
        compute.virtual_machines.begin_run_command(group, target.name, body)
        print("conflict missing")
    except ResourceExistsError as exc:
        print("conflict", exc.error.code)
    result = poller.result()
    print("runcommand", [v.code for v in result.value])

    impatient = ComputeManagementClient(credential, subscription, retry_total=0, **options)
    for attempt in range(1000):
        try:
            impatient.virtual_machines.get(group, target.name)
        except HttpResponseError as exc:
            print("throttled", exc.status_code, exc.response.headers.get("Retry-After"))
            break
    """
)


def _clean_env() -> dict[str, str]:
    keep = (
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TMPDIR",
        "SYSTEMROOT",
        "AZURE_CONFIG_DIR",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        "PYTHONPATH",
    )
    return {k: v for k, v in os.environ.items() if k in keep}


def test_independent_script_uses_only_the_sdk_and_the_printed_exports(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "azrdp",
            "emulator",
            "serve",
            "--scenario",
            "fleet:500:5",
            "--runcommand-seconds",
            "1",
            "--request-log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_clean_env(),
    )
    try:
        assert server.stdout is not None
        exports: dict[str, str] = {}
        while len(exports) < 6:
            line = server.stdout.readline()
            assert line, f"serve ended early: {server.stderr.read() if server.stderr else ''}"
            name, _, value = line.strip().removeprefix("export ").partition("=")
            exports[name] = value.strip("'")
        assert set(exports) >= {
            "AZRDP_ARM_ENDPOINT",
            "AZRDP_CA_BUNDLE",
            "IDENTITY_ENDPOINT",
            "IDENTITY_HEADER",
            "AZURE_SUBSCRIPTION_ID",
        }
        script = tmp_path / "independent.py"
        script.write_text(INDEPENDENT_SCRIPT, encoding="utf-8")
        client = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            env={**_clean_env(), **exports},
            timeout=240,
        )
        assert client.returncode == 0, client.stderr
        lines = client.stdout.splitlines()
        assert lines[0] == "listed 500"
        assert lines[1] == "agent Ready"
        assert lines[2] == "conflict Conflict"
        assert (
            lines[3] == "runcommand ['ComponentStatus/StdOut/succeeded', 'ComponentStatus/StdErr/succeeded']"
        )
        status, retry_after = lines[4].split()[1:]
        assert status == "429" and int(retry_after) >= 1
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0
    assert "stopped" in err
    records = read_request_log(log)
    assert [r.status for r in records].count(429) == 1
    pages = [r for r in records if r.path.endswith("/virtualMachines") and "statusOnly=true" in r.query]
    assert len(pages) == 5
