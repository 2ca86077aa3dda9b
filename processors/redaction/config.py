from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from otlp.component import ComponentConfig
from processors.redaction.builtin import BUILTIN_SETS

HashFunction = Literal["", "md5", "sha1", "sha3", "hmac-sha256", "hmac-sha512"]
_HASH_FUNCTIONS = ("sha1", "sha3", "md5", "hmac-sha256", "hmac-sha512")


def check_regex(pattern: str) -> None:
    """Patterns are RE2 (the syntax of Go's regexp, which the Collector uses): compiled by
    Arrow's RE2, the engine that applies them."""
    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except pa.ArrowInvalid as exc:
        raise ValueError(f"error compiling regex in list: {exc}") from None


class DisabledSanitizer(ComponentConfig):
    """url_sanitizer / db_sanitizer: accepted only switched off (not implemented)."""

    model_config = {"extra": "allow"}
    enabled: bool = False

    @model_validator(mode="after")
    def _off(self) -> DisabledSanitizer:
        if self.enabled:
            raise ValueError("is not supported by AIRIS (only enabled: false is accepted)")
        return self


class RedactionConfig(ComponentConfig):
    """The Collector's redactionprocessor (contrib 0.165) keys, plus ``blocked_value_sets``:
    built-in, named patterns (payment cards Luhn-checked, e-mail, IPs, tokens, keys, phone
    numbers, Korean resident registration numbers) applied after ``blocked_values``."""

    allow_all_keys: bool = False
    allowed_keys: list[str] = Field(default_factory=list)
    ignored_keys: list[str] = Field(default_factory=list)
    ignored_key_patterns: list[str] = Field(default_factory=list)
    blocked_key_patterns: list[str] = Field(default_factory=list)
    blocked_values: list[str] = Field(default_factory=list)
    allowed_values: list[str] = Field(default_factory=list)
    redact_all_types: bool = False
    hash_function: HashFunction = ""
    hmac_key: str = Field(default="", repr=False)
    # "" (unset) and "silent" add no summary attributes
    summary: Literal["", "debug", "info", "silent"] = ""
    masking_string: str = ""
    url_sanitizer: DisabledSanitizer | None = None
    db_sanitizer: DisabledSanitizer | None = None
    blocked_value_sets: list[str] = Field(default_factory=list)

    @field_validator("hash_function", mode="before")
    @classmethod
    def _hash_function(cls, v: object) -> object:
        if isinstance(v, str):
            lowered = v.lower()
            if lowered not in ("", *_HASH_FUNCTIONS):
                raise ValueError(
                    f"unknown HashFunction {lowered}, allowed functions are sha1, sha3, md5, "
                    "hmac-sha256 and hmac-sha512"
                )
            return lowered
        return v

    @field_validator(
        "ignored_key_patterns", "blocked_key_patterns", "blocked_values", "allowed_values"
    )
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for i, pattern in enumerate(v):
            try:
                check_regex(pattern)
            except ValueError as exc:
                raise ValueError(f"[{i}] {pattern!r}: {exc}") from None
        return v

    @field_validator("blocked_value_sets")
    @classmethod
    def _sets(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in BUILTIN_SETS:
                raise ValueError(
                    f"unknown pattern set {name!r}; known sets: {', '.join(BUILTIN_SETS)}"
                )
        return v

    @model_validator(mode="after")
    def _collector_checks(self) -> RedactionConfig:
        if self.hash_function in ("hmac-sha256", "hmac-sha512"):
            if not self.hmac_key:
                raise ValueError(
                    f'hmac_key must not be empty when hash_function is "{self.hash_function}"'
                )
            minimum = 64 if self.hash_function == "hmac-sha512" else 32
            size = len(self.hmac_key.encode())
            if size < minimum:
                raise ValueError(
                    f'hmac_key must be at least {minimum} bytes long for "{self.hash_function}", '
                    f"got {size} bytes"
                )
        if self.masking_string and self.hash_function:
            raise ValueError("masking_string must not be set when hash_function is defined")
        return self
