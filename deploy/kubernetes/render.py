"""Writes gateway.yaml and sidecar.yaml from their .in templates, embedding the collector
config of deploy/config/ in each ConfigMap, so there is one source for each config:
    python deploy/kubernetes/render.py
tests/test_deploy_manifests.py fails when the rendered files are out of date."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent / "config"


def render(name: str) -> str:
    template = (HERE / f"{name}.yaml.in").read_text()
    config = (CONFIGS / f"{name}.yaml").read_text()
    indented = "\n".join(f"    {line}" if line else "" for line in config.rstrip("\n").split("\n"))
    return template.replace("@@CONFIG@@", indented)


def main() -> None:
    for name in ("gateway", "sidecar"):
        (HERE / f"{name}.yaml").write_text(render(name))


if __name__ == "__main__":
    main()
