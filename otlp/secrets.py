"""Secrets in config never reach output: `airis print-config`, config error messages, logs.

What counts as a secret follows the Collector's `configopaque` fields: passwords, tokens,
keys given inline (`key_pem`), API keys, client secrets, and every value of a `headers` map
(they carry `authorization`). URLs keep their user name but lose the password.

Three tools:
* `mask_config` returns a copy of a config tree with secret values replaced by MASK;
* `secret_values` collects the secret strings of a config, and `mask_text` removes them (and
  URL passwords) from any text, e.g. an error message that quoted one;
* `SecretFilter`, a logging filter installed by the CLI on every handler, scrubs log records
  (message, arguments, `extra` fields) before they are formatted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

MASK = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(^|_)(password|passwd|secret|token|tokens|api_?key|private_?key|key_pem|credentials?"
    r"|client_secret|bearer|auth_?header|authorization|sas|access_key|secret_key)$",
    re.IGNORECASE,
)
# maps whose every value is opaque (configopaque.MapList in the Collector)
_OPAQUE_MAPS = frozenset({"headers"})
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@/\s]+)@")
# shorter strings are too likely to occur by chance in harmless text to be scrubbed there
_MIN_SCRUB = 4


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY.search(key))


def mask_url(text: str) -> str:
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)


def mask_config(value: Any, key: object = "") -> Any:
    """A copy of a config tree with secrets masked (keys, structure and other values kept)."""
    if isinstance(value, dict):
        opaque = key in _OPAQUE_MAPS
        return {
            k: (MASK if opaque and v not in (None, "") else mask_config(v, k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_config(v, key) for v in value]
    if is_secret_key(key) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return mask_url(value)
    return value


def secret_values(value: Any, key: object = "") -> set[str]:
    """Every secret string in a config tree (URL passwords included)."""
    found: set[str] = set()
    if isinstance(value, dict):
        opaque = key in _OPAQUE_MAPS
        for k, v in value.items():
            if opaque and isinstance(v, str):
                found.add(v)
            else:
                found |= secret_values(v, k)
    elif isinstance(value, list):
        for v in value:
            found |= secret_values(v, key)
    elif isinstance(value, str):
        if is_secret_key(key):
            found.add(value)
        for match in _URL_PASSWORD.finditer(value):
            found.add(match.group("pw"))
    # "Bearer abc": the token alone may be quoted too
    found |= {part for v in list(found) for part in v.split() if len(part) >= _MIN_SCRUB}
    return {v for v in found if len(v) >= _MIN_SCRUB}


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    # longest first, so a secret containing another is replaced whole
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return mask_url(text)


class SecretFilter(logging.Filter):
    """Scrubs known secret values (and URL passwords) from every record it sees."""

    _STD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return mask_text(value, self.secrets)
        if isinstance(value, BaseException | dict | list | tuple):
            text = str(value)
            cleaned = mask_text(text, self.secrets)
            return value if cleaned == text else cleaned
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        record.msg = self._clean(str(record.msg))
        for name, value in list(vars(record).items()):
            if name not in self._STD and not name.startswith("_"):
                setattr(record, name, self._clean(value))
        if record.exc_info and record.exc_info[1] is not None:
            # an exception's text may quote a secret: it travels as a scrubbed `traceback`
            # field instead of the exception object the formatter would render as is
            formatted = logging.Formatter().formatException(record.exc_info)
            record.traceback = mask_text(formatted, self.secrets)
            record.exc_info = None
            record.exc_text = None
        return True


def install_log_filter(secrets: Iterable[str]) -> SecretFilter:
    """On every handler of the root logger (records from any logger pass through them)."""
    secret_filter = SecretFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(secret_filter)
    return secret_filter
