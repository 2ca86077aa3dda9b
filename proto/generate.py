"""Generates the Python modules of the .proto sources under proto/ with grpcio-tools.

    python -m proto.generate            # rewrite the committed modules in place
    python -m proto.generate --out DIR  # write them under DIR instead (the up-to-date test)

The generated modules are committed, so installing AIRIS needs no grpcio-tools; run this
after editing a .proto file. Sources are compiled relative to the repository root, so the
generated imports read `from proto.jaeger.api_v2 import model_pb2` and the modules live in
the `proto.jaeger.api_v2` package beside their sources.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = (
    "proto/jaeger/api_v2/model.proto",
    "proto/jaeger/api_v2/collector.proto",
)
# only services get a *_pb2_grpc module; grpcio-tools writes an empty one for the others
SERVICES = ("proto/jaeger/api_v2/collector.proto",)


def generated_files() -> list[str]:
    """Paths (relative to the output root) of every module the sources produce."""
    out = [source.removesuffix(".proto") + "_pb2.py" for source in SOURCES]
    out += [source.removesuffix(".proto") + "_pb2_grpc.py" for source in SERVICES]
    return out


def generate(out: Path) -> list[Path]:
    from grpc_tools import protoc  # a test extra: only needed to regenerate

    # google/protobuf/*.proto (Timestamp, Duration) ship inside grpcio-tools
    well_known = resources.files("grpc_tools") / "_proto"
    with_services = set(SERVICES)
    for source in SOURCES:
        args = [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"-I{well_known}",
            f"--python_out={out}",
        ]
        if source in with_services:
            args.append(f"--grpc_python_out={out}")
        code = protoc.main([*args, str(ROOT / source)])
        if code != 0:
            raise RuntimeError(f"protoc failed on {source} (exit {code})")
    return [out / path for path in generated_files()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: repo)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
