"""Microsoft.Resources routes: the subscription list (azrdp looks a subscription up by name, or
takes the only visible one, through it)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from azrdp.emulator.wire import Request, Response, Route, route

if TYPE_CHECKING:
    from azrdp.emulator.server import Emulator

API_VERSIONS = frozenset({"2022-12-01", "2021-01-01", "2020-01-01"})
DISPLAY_NAME = "azrdp emulator"


def subscription_list(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    from azrdp.emulator.server import EMULATOR_TENANT

    sub = emu.subscription_id
    return Response(
        200,
        {
            "value": [
                {
                    "id": f"/subscriptions/{sub}",
                    "subscriptionId": sub,
                    "tenantId": EMULATOR_TENANT,
                    "displayName": DISPLAY_NAME,
                    "state": "Enabled",
                    "subscriptionPolicies": {"spendingLimit": "Off", "quotaId": "PayAsYouGo_2014-09-01"},
                    "authorizationSource": "RoleBased",
                }
            ]
        },
    )


def routes() -> list[Route]:
    return [route("GET", r"/subscriptions", subscription_list, API_VERSIONS)]
