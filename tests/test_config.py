"""Config loading: env expansion, merging, and error messages naming the key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otlp import config
from otlp.errors import ConfigError

BASE = """
receivers:
  otlp:
    protocols:
      grpc:
      http:
processors:
  batch:
exporters:
  nop:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [nop]
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        config.load([write(tmp_path, text)])
    return str(info.value)


def test_minimal_config_loads(tmp_path: Path) -> None:
    cfg = config.load([write(tmp_path, BASE)])
    assert list(cfg.pipelines) == ["traces"]
    batch = next(iter(cfg.components["processor"].values()))
    assert batch.send_batch_size == 8192 and batch.timeout == pytest.approx(0.2)


def test_default_config_is_valid() -> None:
    cfg = config.load(["config/collector.yaml"])
    assert set(cfg.pipelines) == {"traces", "metrics", "logs"}


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (
            BASE.replace("batch:\n", "batch:\n    send_batch_sise: 10\n", 1),
            "processors.batch.send_batch_sise: unknown key",
        ),
        (
            BASE.replace("batch:\n", "batch:\n    timeout: soon\n", 1),
            "processors.batch.timeout: Value error, invalid duration 'soon'",
        ),
        (
            BASE.replace("batch:\n", "batch:\n    send_batch_size: many\n", 1),
            "processors.batch.send_batch_size: Input should be a valid integer",
        ),
        (
            BASE.replace("exporters: [nop]", "exporters: [clickhouse/missing]"),
            "service.pipelines.traces.exporters[0]: references exporter 'clickhouse/missing' "
            "which is not configured",
        ),
        (
            BASE.replace("  nop:\n", "  nope:\n").replace("[nop]", "[nope]"),
            "exporters.nope: unknown exporter type 'nope'",
        ),
        (
            BASE.replace("    traces:", "    spans:"),
            "service.pipelines.spans: unknown signal 'spans'",
        ),
        (
            BASE.replace("      exporters: [nop]", ""),
            "service.pipelines.traces.exporters: required key is missing",
        ),
        (
            BASE.replace(
                "  nop:\n", "  nop:\n  debug:\n    sending_queue: {storage: file_storage}\n"
            ),
            "exporters.debug.sending_queue.storage: references extension 'file_storage' "
            "which is not configured",
        ),
        (
            BASE + "  extensions: [health_check]\n",
            "service.extensions[0]: references extension 'health_check' which is not configured",
        ),
        (
            BASE.replace("      grpc:\n", "      grpc:\n        endpoint: [1, 2]\n"),
            "receivers.otlp.protocols.grpc.endpoint",
        ),
    ],
)
def test_errors_name_the_key_path(tmp_path: Path, patch: str, expected: str) -> None:
    assert expected in error_of(tmp_path, patch)


def test_env_expansion_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_SIZE", "77")
    text = BASE.replace(
        "batch:\n",
        "batch:\n    send_batch_size: ${env:BATCH_SIZE}\n    timeout: ${env:NOPE:-1s}\n",
        1,
    )
    cfg = config.load([write(tmp_path, text)])
    batch = next(iter(cfg.components["processor"].values()))
    assert batch.send_batch_size == 77 and batch.timeout == 1.0


def test_dollar_escape() -> None:
    assert config.expand_env("a$$b ${env:NOT_SET_ANYWHERE:-x}") == "a$b x"


def test_later_files_merge_over_earlier(tmp_path: Path) -> None:
    first = write(tmp_path, BASE, "a.yaml")
    second = write(tmp_path, "processors:\n  batch:\n    send_batch_size: 5\n", "b.yaml")
    cfg = config.load([first, second])
    batch = next(iter(cfg.components["processor"].values()))
    assert batch.send_batch_size == 5 and batch.timeout == pytest.approx(0.2)


def test_inline_yaml_override(tmp_path: Path) -> None:
    cfg = config.load([write(tmp_path, BASE), "yaml:processors::batch::send_batch_size: 9"])
    assert next(iter(cfg.components["processor"].values())).send_batch_size == 9


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otlp.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_validate_ok_and_error(tmp_path: Path) -> None:
    ok = run_cli("validate", "--config", write(tmp_path, BASE))
    assert ok.returncode == 0, ok.stderr
    bad = run_cli(
        "validate", "--config", write(tmp_path, BASE.replace("[nop]", "[debug]"), "b.yaml")
    )
    assert bad.returncode == 1
    assert "service.pipelines.traces.exporters[0]: references exporter 'debug'" in bad.stderr


def test_cli_bad_config_fails_before_binding(tmp_path: Path) -> None:
    # the port is never bound: the error comes from validation, exit code 1
    text = BASE.replace("      grpc:\n", "      grpc:\n        endpoint: 127.0.0.1:notaport\n")
    result = run_cli("--config", write(tmp_path, text))
    assert result.returncode == 1
    assert "receivers.otlp.protocols.grpc.endpoint" in result.stderr


def test_cli_components_and_version() -> None:
    comps = run_cli("components")
    assert comps.returncode == 0
    for name in ("otlp", "batch", "memory_limiter", "clickhouse", "debug", "nop", "health_check"):
        assert f"  - {name}" in comps.stdout
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("airis ")
