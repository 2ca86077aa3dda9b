"""Secrets in the config (tokens, passwords, inline keys, header values, URL passwords) never
appear in `airis print-config`, config error messages (`airis validate`) or log lines."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from otlp import config as config_module
from otlp.errors import ConfigError
from otlp.secrets import MASK, SecretFilter, mask_config, mask_text, secret_values
from tests.harness import ROOT

SECRETS = ("tok-4f9a1c", "pa55w0rd-x", "hdr-bearer-77", "BEGIN-KEY-material", "dsnpass99")


def _config() -> dict[str, Any]:
    return {
        "receivers": {
            "otlp": {"protocols": {"http": {"auth": {"authenticator": "bearertokenauth"}}}}
        },
        "exporters": {
            "otlphttp": {
                "endpoint": "https://gw.example:4318",
                "headers": {"authorization": "Bearer hdr-bearer-77"},
                "tls": {"key_pem": "BEGIN-KEY-material"},
            },
            "clickhouse": {
                "endpoint": "tcp://airis:dsnpass99@ch.example:9000",
                "password": "pa55w0rd-x",
            },
        },
        "extensions": {"bearertokenauth": {"tokens": ["tok-4f9a1c"]}},
        "service": {
            "extensions": ["bearertokenauth"],
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["otlphttp"]}},
        },
    }


def test_mask_config_keeps_structure_and_hides_secrets() -> None:
    masked = mask_config(_config())
    text = yaml.safe_dump(masked)
    for secret in SECRETS:
        assert secret not in text
    assert masked["extensions"]["bearertokenauth"]["tokens"] == [MASK]
    assert masked["exporters"]["otlphttp"]["headers"] == {"authorization": MASK}
    assert masked["exporters"]["clickhouse"]["endpoint"] == f"tcp://airis:{MASK}@ch.example:9000"
    assert masked["exporters"]["otlphttp"]["endpoint"] == "https://gw.example:4318"
    assert set(secret_values(_config())) >= set(SECRETS)
    assert mask_text("sent hdr-bearer-77 to x", secret_values(_config())) == f"sent {MASK} to x"


def _cli(tmp_path: Path, *args: str, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "otlp.cli", *args, "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_print_config_is_redacted(tmp_path: Path) -> None:
    out = _cli(tmp_path, "print-config", config=_config())
    assert out.returncode == 0, out.stderr
    for secret in SECRETS:
        assert secret not in out.stdout
    assert MASK in out.stdout
    unredacted = _cli(tmp_path, "print-config", "--mode", "unredacted", config=_config())
    assert "tok-4f9a1c" in unredacted.stdout


def test_validate_errors_do_not_quote_secrets(tmp_path: Path) -> None:
    bad = _config()
    # wrong types next to secrets: the error quotes the offending section
    bad["exporters"]["otlphttp"]["compression"] = "brotli"
    bad["exporters"]["otlphttp"]["endpoint"] = "ftp://user:dsnpass99@gw"
    out = _cli(tmp_path, "validate", config=bad)
    assert out.returncode == 1
    assert "exporters.otlphttp" in out.stderr
    for secret in SECRETS:
        assert secret not in out.stderr + out.stdout
    bad = _config()
    bad["extensions"]["bearertokenauth"]["tokens"] = "tok-4f9a1c"  # a string, not a list
    with pytest.raises(ConfigError) as info:
        config_module.validate(bad)
    assert "tok-4f9a1c" not in str(info.value)
    assert "extensions.bearertokenauth.tokens" in str(info.value)


def test_log_lines_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("airis.test.secrets")
    secret_filter = SecretFilter(secret_values(_config()))
    caplog.handler.addFilter(secret_filter)
    try:
        with caplog.at_level(logging.INFO, logger="airis.test.secrets"):
            logger.info("connecting with %s", "Bearer hdr-bearer-77")
            logger.warning("failed", extra={"dsn": "tcp://airis:dsnpass99@ch:9000"})
            try:
                raise RuntimeError("auth pa55w0rd-x refused")
            except RuntimeError:
                logger.exception("export failed")
    finally:
        caplog.handler.removeFilter(secret_filter)
    text = "\n".join(
        f"{r.getMessage()} {vars(r).get('dsn', '')} {vars(r).get('traceback', '')}"
        for r in caplog.records
    )
    for secret in SECRETS:
        assert secret not in text
    assert "RuntimeError" in text and MASK in text
