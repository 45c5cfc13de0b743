"""Fix lines are copied into shells: they never suggest piping a third party's answer into azrdp."""

from __future__ import annotations

import pytest

from azrdp.errors import UsageError
from azrdp.targets import validate_source


@pytest.mark.parametrize("bad", ["Internet", "any", "my-laptop", "1.2.3.4/33"])
def test_a_bad_source_ip_fix_names_no_lookup_service(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_source(bad)
    fix = info.value.fix
    assert "$(" not in fix and "http" not in fix and "curl" not in fix
    assert "--source-ip 203.0.113.7" in fix
