"""Published api-versions, one line per provider namespace, and the check ARM makes on every request.

ARM routes every api-version a provider has published, old and new (the official Azure CLI 2.91
sends network 2022-01-01 and compute 2022-11-01 while the SDK sends 2026-03-01 and 2026-04-01), so
the emulator accepts any version of the provider's published line and refuses only a missing one
(400 MissingApiVersionParameter), a malformed one (400 InvalidApiVersionParameter) or one never
published (400 NoRegisteredProviderFound). Response bodies keep the newest version's shape: the
SDK's and the CLI's models tolerate fields they do not know.

To serve a new provider, add its line here (with the source of the list) and pass its key to
`wire.route(...)`. A route names a line key, never a version list of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from azrdp.emulator.wire import ArmError

WELL_FORMED = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview|-beta|-alpha|-privatepreview)?$", re.IGNORECASE)


@dataclass(frozen=True)
class ApiLine:
    """The api-versions one provider (or one resource family of it) has published."""

    namespace: str
    versions: frozenset[str]
    source: str

    def supported(self) -> str:
        return ", ".join(sorted(self.versions, reverse=True))


def _line(namespace: str, source: str, versions: str) -> ApiLine:
    return ApiLine(namespace, frozenset(versions.split()), source)


PUBLISHED: dict[str, ApiLine] = {
    # ComputeRP stable folders of the REST specs, plus the TypeSpec examples folders for the newest.
    "Microsoft.Compute": _line(
        "Microsoft.Compute",
        "Azure/azure-rest-api-specs specification/compute/resource-manager/Microsoft.Compute/"
        "ComputeRP/stable/<version> and .../Microsoft.Compute/Compute/examples/<version>",
        """
        2015-06-15 2016-03-30 2016-04-30-preview 2017-03-30 2017-12-01
        2018-04-01 2018-06-01 2018-10-01 2019-03-01 2019-07-01 2019-12-01 2020-06-01 2020-12-01
        2021-03-01 2021-04-01 2021-07-01 2021-11-01 2022-03-01 2022-08-01 2022-11-01 2023-03-01
        2023-07-01 2023-09-01 2024-03-01 2024-07-01 2024-11-01 2025-04-01 2025-11-01 2026-04-01
        """,
    ),
    # Microsoft.Network stable folders of the REST specs; 2025-09-01 is what az 2.91 sends for
    # public IPs, 2026-03-01 what azure-mgmt-network 33 sends.
    "Microsoft.Network": _line(
        "Microsoft.Network",
        "Azure/azure-rest-api-specs specification/network/resource-manager/Microsoft.Network/"
        "stable/<version>",
        """
        2015-05-01-preview 2015-06-15 2016-03-30 2016-06-01 2016-09-01 2016-12-01 2017-03-01
        2017-06-01 2017-08-01 2017-09-01 2017-10-01 2017-11-01 2018-01-01 2018-02-01 2018-04-01
        2018-06-01 2018-07-01 2018-08-01 2018-10-01 2018-11-01 2018-12-01 2019-02-01 2019-04-01
        2019-06-01 2019-07-01 2019-08-01 2019-09-01 2019-11-01 2019-12-01 2020-03-01 2020-04-01
        2020-05-01 2020-06-01 2020-07-01 2020-08-01 2020-11-01 2021-02-01 2021-03-01 2021-05-01
        2021-08-01 2022-01-01 2022-05-01 2022-07-01 2022-09-01 2022-11-01 2023-02-01 2023-04-01
        2023-05-01 2023-06-01 2023-09-01 2023-11-01 2024-01-01 2024-03-01 2024-05-01 2024-07-01
        2024-10-01 2025-01-01 2025-03-01 2025-05-01 2025-07-01 2025-09-01 2026-01-01 2026-03-01
        """,
    ),
    # Resource Health (availability statuses): specification/resourcehealth/resource-manager/
    # Microsoft.ResourceHealth/{stable,preview}/<version>.
    "Microsoft.ResourceHealth": _line(
        "Microsoft.ResourceHealth",
        "Azure/azure-rest-api-specs specification/resourcehealth/resource-manager/Microsoft.ResourceHealth/"
        "{stable,preview}/<version>",
        """
        2015-01-01 2017-07-01 2018-07-01 2018-08-01 2020-05-01 2020-05-01-preview 2022-05-01
        2022-05-01-preview 2022-10-01 2024-02-01 2025-05-01 2026-07-01 2026-08-01-preview
        """,
    ),
    # Resource groups and the resources list: specification/resources/resource-manager/
    # Microsoft.Resources/stable/<version>/resources.json, as azure-mgmt-resource 24 ships them.
    "Microsoft.Resources": _line(
        "Microsoft.Resources",
        "Azure/azure-rest-api-specs specification/resources/resource-manager/Microsoft.Resources/"
        "stable/<version>/resources.json",
        """
        2016-02-01 2016-09-01 2017-05-10 2018-02-01 2018-05-01 2019-03-01 2019-05-01 2019-05-10
        2019-07-01 2019-08-01 2019-10-01 2020-06-01 2020-10-01 2021-01-01 2021-04-01 2022-09-01
        2024-07-01 2024-11-01 2025-03-01 2025-04-01
        """,
    ),
    # GET /subscriptions: .../Microsoft.Resources/stable/<version>/subscriptions.json.
    "Microsoft.Resources/subscriptions": _line(
        "Microsoft.Resources",
        "Azure/azure-rest-api-specs specification/resources/resource-manager/Microsoft.Resources/"
        "stable/<version>/subscriptions.json",
        "2016-06-01 2018-06-01 2019-06-01 2019-11-01 2020-01-01 2021-01-01 2022-12-01",
    ),
    # Permissions_ListForResourceGroup / _ListForResource: specification/authorization/resource-manager/
    # Microsoft.Authorization/{2015-07-01, stable/2022-04-01}/..., and 2018-01-01-preview (the
    # PermissionsOperations of azure-mgmt-authorization's v2018_01_01_preview).
    "Microsoft.Authorization": _line(
        "Microsoft.Authorization",
        "Azure/azure-rest-api-specs specification/authorization/resource-manager/Microsoft.Authorization/"
        "{2015-07-01,stable/2022-04-01}/...; azure-mgmt-authorization v2018_01_01_preview",
        "2015-07-01 2018-01-01-preview 2022-04-01",
    ),
    # ARM's cloud metadata (learn.microsoft.com/cli/azure/manage-clouds-azure-cli; az 2.91 asks 2022-09-01).
    "metadata": _line(
        "Microsoft.Resources",
        "ARM /metadata/endpoints (az cloud register asks 2022-09-01; older clients 2015-01-01, 2019-05-01)",
        "2015-01-01 2019-05-01 2020-06-01 2022-09-01",
    ),
}


def check_api_version(line_key: str, version: str | None, resource_type: str, location: str) -> None:
    """Refuse a request whose api-version ARM would refuse; return quietly otherwise."""
    line = PUBLISHED[line_key]
    if not version:
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if not WELL_FORMED.match(version):
        raise ArmError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are '{line.supported()}'.",
        )
    if version.lower() not in {v.lower() for v in line.versions}:
        raise ArmError(
            400,
            "NoRegisteredProviderFound",
            f"No registered resource provider found for location '{location}' and API version "
            f"'{version}' for type '{resource_type}'. The supported api-versions are "
            f"'{line.supported()}'. The supported locations are '{location}'.",
        )
