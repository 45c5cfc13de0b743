"""One test per defect found by reading collector.ps1 and executor.ps1 against Windows PowerShell 5.1
and .NET Framework 4.x (the review after issue 11). Where the defect is PowerShell's alone, the test
reads the parsed scripts; where Windows' behaviour was missing from the model, the model learned it
(with its source) and the test drives it through the real wire."""

from __future__ import annotations

import re

from azrdp.guest import scripts


def functions(text: str) -> dict[str, list[str]]:
    """Each function of a script, as its lines."""
    out: dict[str, list[str]] = {}
    for match in re.finditer(r"^function ([\w-]+) \{\n(.*?)^\}$", text, re.M | re.S):
        out[match.group(1)] = match.group(2).splitlines()
    return out


# --- values cut for the output ------------------------------------------------------------------

# Method calls that only compare or collect cut values (de-duplicating names for the output).
_COLLECTING = re.compile(r"\.(Contains|Add)\($")


def test_a_value_cut_for_the_output_is_never_used_afterwards_as_an_input() -> None:
    """Get-AzrdpKeyFacts cut the key's container and provider names to 40 characters, then opened
    the key with them: the self-signed certificate's provider, 'Microsoft Enhanced RSA and AES
    Cryptographic Provider', is 53 characters, so SYSTEM never opened a healthy listener key, and
    azrdp judged it damaged and planned to move it aside and delete the certificate."""
    found = []
    for name, lines in functions(scripts.composed_text()).items():
        for index, line in enumerate(lines):
            cut = re.match(r"\s*(\$[\w.]+) = Limit-AzrdpText\b", line)
            if cut is None:
                continue
            target = re.escape(cut.group(1)) + r"(?![\w.])"
            for later in lines[index + 1 :]:
                for use in re.finditer(target, later):
                    before = later[: use.start()]
                    # Inside an argument list: a method, a constructor, New-Object, a static call.
                    depth, opener = 0, ""
                    for position in range(len(before) - 1, -1, -1):
                        char = before[position]
                        if char == ")":
                            depth += 1
                        elif char == "(":
                            if depth == 0:
                                opener = before[: position + 1]
                                break
                            depth -= 1
                    as_argument = bool(re.search(r"[\w\]]\($", opener)) and not _COLLECTING.search(opener)
                    if as_argument or re.search(r"New-Object\b|-ArgumentList\b", before):
                        found.append(f"{name}: {cut.group(1)} is cut, then used in: {later.strip()}")
    assert found == []
    # The key is opened with the names as the certificate's key-provider info holds them.
    key = "\n".join(functions(scripts.collector_text())["Get-AzrdpKeyFacts"])
    assert key.index("CspParameters($k.pt, $k.pn, $k.c)") < key.index("$k.pn = Limit-AzrdpText")
    assert key.index("CngKey]::Open($k.c") < key.index("$k.c = Limit-AzrdpText")
