"""Bounded decompression of HTTP request bodies (Content-Encoding gzip, deflate/zlib, zstd).

Output is capped at `limit` bytes while decompressing, so a small body that inflates to
gigabytes (a "zip bomb") costs at most `limit` bytes of memory before it is refused.
"""

from __future__ import annotations

import zlib

import zstandard

GZIP_WBITS = 16 + zlib.MAX_WBITS
ZLIB_WBITS = zlib.MAX_WBITS
RAW_DEFLATE_WBITS = -zlib.MAX_WBITS


class TooLarge(Exception):
    """The decompressed body is larger than the limit."""


class CorruptBody(Exception):
    """The body is not valid data of its Content-Encoding."""


def decompress(encoding: str, data: bytes, limit: int) -> bytes:
    """`encoding` is a lower-cased Content-Encoding this module supports (not identity)."""
    if encoding == "gzip":
        return _inflate(data, GZIP_WBITS, limit, multi_member=True)
    if encoding in ("deflate", "zlib"):
        # HTTP's "deflate" is zlib-wrapped; some clients send raw deflate, accept both
        if data[:1] and (data[0] & 0x0F) == 8 and int.from_bytes(data[:2], "big") % 31 == 0:
            return _inflate(data, ZLIB_WBITS, limit, multi_member=False)
        return _inflate(data, RAW_DEFLATE_WBITS, limit, multi_member=False)
    if encoding == "zstd":
        return _unzstd(data, limit)
    raise CorruptBody(f"unsupported Content-Encoding: {encoding}")


def _inflate(data: bytes, wbits: int, limit: int, *, multi_member: bool) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            # at most limit+1 bytes: one more than allowed proves the body is too large
            chunk = inflater.decompress(data, limit + 1 - total)
            total += len(chunk)
            parts.append(chunk)
            if total > limit:
                raise TooLarge
            tail = inflater.flush(limit + 1 - total)
        except zlib.error as exc:
            raise CorruptBody(f"invalid compressed body: {exc}") from None
        total += len(tail)
        parts.append(tail)
        if total > limit:
            raise TooLarge
        if not inflater.eof:
            raise CorruptBody("invalid compressed body: unexpected end of stream")
        data = inflater.unused_data
        # concatenated gzip members form one body (as Go's gzip reader reads them)
        if not (multi_member and data):
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _unzstd(data: bytes, limit: int) -> bytes:
    # a frame may ask for a huge window; never allocate more than the body could need
    window = max(1 << 23, 1 << max(limit - 1, 1).bit_length())
    dctx = zstandard.ZstdDecompressor(max_window_size=min(window, 1 << 27))
    parts: list[bytes] = []
    total = 0
    try:
        reader = dctx.stream_reader(data, read_across_frames=True)
        while True:
            chunk = reader.read(limit + 1 - total)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise TooLarge
            parts.append(chunk)
    except zstandard.ZstdError as exc:
        raise CorruptBody(f"invalid zstd body: {exc}") from None
    # a truncated zstd stream is not detected here; the decoder then rejects the cut message
    return parts[0] if len(parts) == 1 else b"".join(parts)
