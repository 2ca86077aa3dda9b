"""Builds the compiled OTLP wire decoder (otlp/_wire.c) and encoder (otlp/_encode.c); all other
metadata is in pyproject.toml.

The sources' hashes are compiled in so that tests can tell a stale build (an editable install
made before the last change to the C file) from the current source.
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "otlp/_wire.c"
SOURCE_HASH = hashlib.sha256(Path(__file__).with_name("otlp").joinpath("_wire.c").read_bytes())
ENCODE_HASH = hashlib.sha256(Path(__file__).with_name("otlp").joinpath("_encode.c").read_bytes())

setup(
    ext_modules=[
        Extension(
            "otlp._wire",
            [SOURCE],
            define_macros=[("WIRE_SOURCE_HASH", f'"{SOURCE_HASH.hexdigest()[:16]}"')],
            extra_compile_args=["-O2"],
        ),
        # the compiled encoder (otlp/encode_fast.py falls back to otlp/encode.py without it)
        Extension(
            "otlp._encode",
            ["otlp/_encode.c"],
            define_macros=[("ENCODE_SOURCE_HASH", f'"{ENCODE_HASH.hexdigest()[:16]}"')],
            extra_compile_args=["-O2"],
        ),
    ]
)
