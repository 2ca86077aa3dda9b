"""Builds the compiled OTLP wire decoder (otlp/_wire.c); all other metadata is in pyproject.toml.

The source's hash is compiled in so that a test can tell a stale build (an editable install made
before the last change to _wire.c) from the current source.
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "otlp/_wire.c"
SOURCE_HASH = hashlib.sha256(Path(__file__).with_name("otlp").joinpath("_wire.c").read_bytes())

setup(
    ext_modules=[
        Extension(
            "otlp._wire",
            [SOURCE],
            define_macros=[("WIRE_SOURCE_HASH", f'"{SOURCE_HASH.hexdigest()[:16]}"')],
            extra_compile_args=["-O2"],
        )
    ]
)
