"""Built-in named value patterns (``blocked_value_sets``), an AIRIS extension.

Each set is an RE2 pattern that finds candidates on whole columns, and optionally a check
run in Python on the candidates only (the Luhn checksum for payment cards, a parser for IPv6
addresses, a digit count for phone numbers), so that look-alikes such as order numbers pass.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Pattern:
    regex: str
    check: Callable[[str], bool] | None = None


def luhn(text: str) -> bool:
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _ipv6(text: str) -> bool:
    if text == "::":
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _phone_digits(text: str) -> bool:
    return 8 <= sum(c.isdigit() for c in text) <= 15


_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_H: Final = r"[0-9A-Fa-f]{1,4}"
# full, IPv4-suffixed and compressed forms, greedy on both sides of "::" (RE2 takes the
# first alternative that matches, so the longer forms come first); candidates are confirmed
# by a parser, which also rejects a bare "::" (as in "std::string")
_IPV6: Final = (
    rf"(?:\b(?:{_H}:){{7}}{_H}\b"
    rf"|\b(?:{_H}:){{1,6}}:?{_OCTET}(?:\.{_OCTET}){{3}}\b"
    rf"|::(?:[Ff]{{4}}:)?{_OCTET}(?:\.{_OCTET}){{3}}\b"
    rf"|(?:\b{_H}(?::{_H}){{0,6}})?::(?:{_H}(?::{_H}){{0,6}}\b)?)"
)

BUILTIN_SETS: Final[dict[str, Pattern]] = {
    # 13-19 digits starting like a card network's numbers (2-6), optionally grouped by
    # spaces or dashes; Luhn-checked
    "credit_card": Pattern(r"\b[2-6](?:[ -]?[0-9]){12,18}\b", luhn),
    "email": Pattern(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    "ipv4": Pattern(rf"\b{_OCTET}(?:\.{_OCTET}){{3}}\b"),
    "ipv6": Pattern(_IPV6, _ipv6),
    # a JWS/JWE: base64url JSON header and payload ('{"' encodes as "eyJ")
    "jwt": Pattern(r"\beyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)*"),
    "bearer_token": Pattern(r"(?i)\bbearer[ \t]+[A-Za-z0-9\-._~+/]+=*"),
    "aws_access_key": Pattern(r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b"),
    "gcp_api_key": Pattern(r"\bAIza[0-9A-Za-z_-]{35}"),
    "github_token": Pattern(r"\b(?:gh[pousr]|github_pat)_[A-Za-z0-9_]{36,255}\b"),
    "slack_token": Pattern(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    # international (+CC ...) or grouped national numbers (02-123-4567, (555) 123-4567,
    # 010-1234-5678); bare digit runs such as ids and timestamps are not phone numbers
    "phone": Pattern(
        r"(?:\+[0-9]{1,3}[ .-]?(?:\(?[0-9]{1,4}\)?[ .-]?)?[0-9]{2,4}[ .-]?[0-9]{3,4}"
        r"|\(?\b0?[0-9]{2,4}\)?[ .-][0-9]{3,4}[ .-][0-9]{4})\b",
        _phone_digits,
    ),
    # Korean resident registration number: YYMMDD-GNNNNNN (G: 1-8); the check digit is not
    # verified because numbers issued since October 2020 no longer carry one
    "kr_rrn": Pattern(r"\b[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])-?[1-8][0-9]{6}\b"),
}
