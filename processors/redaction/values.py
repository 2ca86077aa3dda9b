"""Value rules on whole string columns: ``allowed_values`` matching, ``blocked_values`` (and
built-in sets) masking in order, and the masking itself (a fixed string or a hash of each
match). Patterns run as Arrow RE2 kernels over the column; Python touches only the values
that matched a pattern which needs a hash per match or a check on each candidate."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.columns import fill_null
from processors.redaction.builtin import BUILTIN_SETS, Pattern

DEFAULT_MASK: Final = "****"
# Unicode noncharacters around each match (RE2 "\0" is the whole match), so a Python pass
# can find the matches Arrow found without re-running the pattern with another engine
_OPEN: Final = "\ufdd0"
_CLOSE: Final = "\ufdd1"
_MARK: Final = _OPEN + "\\0" + _CLOSE


def _hasher(function: str, key: bytes) -> Callable[[str], str]:
    if function == "md5":
        return lambda s: hashlib.md5(s.encode(), usedforsecurity=False).hexdigest()
    if function == "sha1":
        return lambda s: hashlib.sha1(s.encode(), usedforsecurity=False).hexdigest()
    if function == "sha3":
        return lambda s: hashlib.sha3_256(s.encode()).hexdigest()
    if function == "hmac-sha256":
        return lambda s: hmac.new(key, s.encode(), hashlib.sha256).hexdigest()
    if function == "hmac-sha512":
        return lambda s: hmac.new(key, s.encode(), hashlib.sha512).hexdigest()
    raise ValueError(function)


def _combined(patterns: Sequence[str]) -> str:
    """One RE2 alternation that matches where any of ``patterns`` does (each in its own
    group, so inline flags such as ``(?i)`` keep their scope)."""
    return "|".join(f"(?:{p})" for p in patterns)


def _matches(values: pa.Array, pattern: str) -> pa.Array:
    return fill_null(pc.match_substring_regex(values, pattern), False)


def _distinct(values: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """The distinct values and the indices that rebuild the column (None: no saving).
    Attribute values repeat a lot (methods, routes, hosts), and regexes cost more than
    hashing, so patterns run once per distinct value."""
    if len(values) < 64:
        return values, None
    encoded = pc.dictionary_encode(values)
    if len(encoded.dictionary) > 0.7 * len(values):
        return values, None
    return encoded.dictionary, encoded.indices


class ValueRules:
    def __init__(
        self,
        blocked: Sequence[str],
        sets: Sequence[str],
        allowed: Sequence[str],
        hash_function: str,
        hmac_key: str,
        masking_string: str,
    ) -> None:
        self.blocked = [Pattern(p) for p in blocked] + [BUILTIN_SETS[name] for name in sets]
        self.allowed_patterns = list(allowed)
        self.mask_text = masking_string or DEFAULT_MASK
        self.hash: Callable[[str], str] | None = (
            _hasher(hash_function, hmac_key.encode()) if hash_function else None
        )
        # RE2 replacement strings treat backslashes specially
        self._replacement = self.mask_text.replace("\\", "\\\\")
        self._any_blocked = _combined([p.regex for p in self.blocked]) if self.blocked else ""
        self._any_allowed = _combined(self.allowed_patterns) if self.allowed_patterns else ""

    @property
    def active(self) -> bool:
        return bool(self.blocked)

    def mask_one(self, match: str) -> str:
        return self.hash(match) if self.hash else self.mask_text

    def allowed(self, values: pa.Array) -> np.ndarray:
        if not self._any_allowed or not len(values):
            return np.zeros(len(values), np.bool_)
        distinct, indices = _distinct(values)
        hit = _matches(distinct, self._any_allowed)
        if indices is not None:
            hit = hit.take(indices)
        return hit.to_numpy(zero_copy_only=False)

    def mask_all(self, values: pa.Array) -> pa.Array:
        """Each whole value masked (what a blocked key gets)."""
        if self.hash is None:
            return pc.fill_null(pa.nulls(len(values), pa.string()), self.mask_text)
        return pa.array([self.hash(v or "") for v in values.to_pylist()], pa.string())

    def apply(self, values: pa.Array) -> pa.Array:
        """Every blocked pattern in order, each replacing all its matches (Go's
        ReplaceAllStringFunc, whose empty-match rules RE2's global replace shares).

        One alternation of all patterns finds the values any pattern touches; only those go
        through the patterns one by one."""
        if not self.blocked or not len(values):
            return values
        distinct, indices = _distinct(values)
        touched = _matches(distinct, self._any_blocked)
        if not pc.any(touched).as_py():
            return values
        work = distinct.filter(touched)
        for pattern in self.blocked:
            hit = _matches(work, pattern.regex)
            if not pc.any(hit).as_py():
                continue
            matched = work.filter(hit)
            if self.hash is None and pattern.check is None:
                replaced = pc.replace_substring_regex(matched, pattern.regex, self._replacement)
            else:
                marked = pc.replace_substring_regex(matched, pattern.regex, _MARK)
                replaced = pa.array(
                    [self._mask_marked(text, pattern) for text in marked.to_pylist()],
                    pa.string(),
                )
            work = pc.replace_with_mask(work, hit, replaced)
        out = pc.replace_with_mask(distinct, touched, work)
        return out.take(indices) if indices is not None else out

    def _mask_marked(self, text: str, pattern: Pattern) -> str:
        pieces = text.split(_OPEN)
        out = [pieces[0]]
        for piece in pieces[1:]:
            match, sep, rest = piece.partition(_CLOSE)
            if not sep:
                # the value itself held a marker character: mask all of it, to be safe
                return self.mask_one(text.replace(_OPEN, "").replace(_CLOSE, ""))
            if pattern.check is None or pattern.check(match):
                out.append(self.mask_one(match))
            else:
                out.append(match)
            out.append(rest)
        return "".join(out)
