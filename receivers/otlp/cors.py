"""CORS for OTLP/HTTP, as confighttp configures rs/cors: origins with `*` wildcards,
credentials allowed, methods GET/POST/HEAD, the safelisted headers always allowed.

Preflights are answered 204 whatever the outcome; a refused one simply lacks the
Access-Control-Allow-* headers, so the browser blocks the request.
"""

from __future__ import annotations

import re

from receivers.otlp.config import CORSConfig

Headers = list[tuple[bytes, bytes]]

ALLOWED_METHODS = frozenset({"GET", "POST", "HEAD"})
IMPLICIT_HEADERS = frozenset(
    {"accept", "accept-language", "content-type", "content-language", "origin"}
)


class CORS:
    def __init__(self, cfg: CORSConfig) -> None:
        self.any_origin = "*" in cfg.allowed_origins
        patterns = [
            ".*".join(re.escape(part) for part in origin.lower().split("*"))
            for origin in cfg.allowed_origins
        ]
        self._origin = re.compile("|".join(f"(?:{p})" for p in patterns) or "(?!)")
        configured = {h.strip().lower() for h in cfg.allowed_headers}
        self.any_header = "*" in configured
        # rs/cors accepts X-Requested-With when no headers are configured
        self.headers = IMPLICIT_HEADERS | (configured or {"x-requested-with"})
        self.max_age = str(cfg.max_age).encode() if cfg.max_age > 0 else None
        self.exposed = ", ".join(cfg.exposed_headers).encode() if cfg.exposed_headers else None

    def origin_allowed(self, origin: str) -> bool:
        return self.any_origin or self._origin.fullmatch(origin.lower()) is not None

    def preflight(self, origin: str, method: str, request_headers: str) -> Headers:
        """Response headers for an OPTIONS preflight (only Vary: refused)."""
        vary = [(b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers")]
        if not self.origin_allowed(origin) or method.upper() not in ALLOWED_METHODS:
            return vary
        wanted = [h.strip().lower() for h in request_headers.split(",") if h.strip()]
        if not self.any_header and any(h not in self.headers for h in wanted):
            return vary
        out = [
            *vary,
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", method.upper().encode("latin-1")),
            (b"access-control-allow-credentials", b"true"),
        ]
        if wanted:
            out.append((b"access-control-allow-headers", ", ".join(wanted).encode("latin-1")))
        if self.max_age:
            out.append((b"access-control-max-age", self.max_age))
        return out

    def actual(self, origin: str, method: str) -> Headers:
        """Headers added to the response of a cross-origin request."""
        if not self.origin_allowed(origin) or method not in ALLOWED_METHODS:
            return [(b"vary", b"Origin")]
        # the origin is echoed (not "*") so credentialed browser requests work too
        out = [
            (b"vary", b"Origin"),
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"),
        ]
        if self.exposed:
            out.append((b"access-control-expose-headers", self.exposed))
        return out
