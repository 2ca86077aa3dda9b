"""Config loading: the OTel Collector's YAML layout, env expansion, merging, validation.

Errors name the key path (`exporters.clickhouse.endpoint`) and what was expected, and are raised
before any port is bound.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from otlp import registry, secrets
from otlp.batch import SIGNALS
from otlp.component import EXPORTER, EXTENSION, PROCESSOR, RECEIVER, ComponentID
from otlp.errors import ConfigError

_ENV = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ESCAPED = "$$"
_SECTION_KIND = {
    "receivers": RECEIVER,
    "processors": PROCESSOR,
    "exporters": EXPORTER,
    "extensions": EXTENSION,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PipelineConfig(_Strict):
    receivers: list[str] = Field(min_length=1)
    processors: list[str] = Field(default_factory=list)
    exporters: list[str] = Field(min_length=1)


class LogsTelemetry(_Strict):
    level: str = Field("info", pattern="(?i)^(debug|info|warn|warning|error)$")
    encoding: str = Field("console", pattern="^(console|json)$")
    development: bool = False


class PrometheusPull(_Strict):
    host: str = "127.0.0.1"
    port: int = 8888


class PullExporter(_Strict):
    prometheus: PrometheusPull


class Pull(_Strict):
    exporter: PullExporter


class MetricReader(_Strict):
    pull: Pull


class MetricsTelemetry(_Strict):
    level: str = Field("normal", pattern="^(none|basic|normal|detailed)$")
    # the pre-0.111 `address` form, still accepted by the Collector
    address: str | None = None
    readers: list[MetricReader] | None = None

    def listen_address(self) -> tuple[str, int] | None:
        if self.level == "none":
            return None
        if self.address:
            host, _, port = self.address.rpartition(":")
            return host or "127.0.0.1", int(port)
        if self.readers:
            prom = self.readers[0].pull.exporter.prometheus
            return prom.host, prom.port
        return "127.0.0.1", 8888


class TelemetryConfig(_Strict):
    logs: LogsTelemetry = Field(default_factory=LogsTelemetry)
    metrics: MetricsTelemetry = Field(default_factory=MetricsTelemetry)
    resource: dict[str, str | None] = Field(default_factory=dict)


class ServiceSection(_Strict):
    extensions: list[str] = Field(default_factory=list)
    pipelines: dict[str, PipelineConfig] = Field(min_length=1)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    # AIRIS: processes sharing the listening ports (SO_REUSEPORT)
    workers: int = Field(1, ge=1, le=64)


class TopLevel(_Strict):
    receivers: dict[str, Any] = Field(default_factory=dict)
    processors: dict[str, Any] = Field(default_factory=dict)
    exporters: dict[str, Any] = Field(default_factory=dict)
    extensions: dict[str, Any] = Field(default_factory=dict)
    connectors: dict[str, Any] = Field(default_factory=dict)
    service: ServiceSection


@dataclass(slots=True)
class Config:
    """A validated config: component configs by id, pipelines, service settings."""

    components: dict[str, dict[ComponentID, Any]]  # kind → id → validated config model
    pipelines: dict[str, PipelineConfig]
    service: ServiceSection
    raw: dict[str, Any] = field(default_factory=dict)

    def pipeline_signal(self, pipeline_id: str) -> str:
        return pipeline_id.partition("/")[0]


def expand_env(value: Any, path: str = "") -> Any:
    """`${env:VAR}`, `${VAR}`, `${env:VAR:-default}`; `$$` escapes a literal `$`."""
    if isinstance(value, dict):
        return {k: expand_env(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        return default if default is not None else ""

    parts = value.split(_ESCAPED)
    expanded = "$".join(_ENV.sub(substitute, part) for part in parts)
    # a whole-value reference takes the YAML type of what it expands to (as the Collector does)
    if _ENV.fullmatch(value) and expanded != value:
        try:
            loaded = yaml.safe_load(expanded)
        except yaml.YAMLError:
            return expanded
        if isinstance(loaded, int | float | bool) and not isinstance(loaded, str):
            return loaded
    return expanded


def merge(base: Any, override: Any) -> Any:
    """Maps merge key by key; anything else (lists included) is replaced, as in the Collector."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return override


def read_files(paths: list[str]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path_text in paths:
        if path_text.startswith("yaml:"):
            # `--config "yaml:exporters::debug::verbosity: detailed"` as the Collector accepts
            text = path_text[len("yaml:") :]
            doc = _yaml_inline(text)
            source = "inline yaml"
        else:
            path = Path(path_text.removeprefix("file:"))
            try:
                text = path.read_text()
            except OSError as exc:
                raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
            source = str(path)
            try:
                doc = yaml.safe_load(text) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{source}: invalid YAML: {exc}") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level")
        merged = merge(merged, doc)
    return merged


def _yaml_inline(text: str) -> dict[str, Any]:
    # the value starts after the first ':' that is not part of a '::' path separator
    match = re.match(r"^((?:[^:]|::)+):(?!:)(.*)$", text, re.S)
    key, value = (match.group(1), match.group(2)) if match else ("", "")
    if not match:
        raise ConfigError(f"invalid inline yaml {text!r}: expected key::path: value")
    doc: Any = yaml.safe_load(value) if value.strip() else None
    for part in reversed(key.split("::")):
        doc = {part: doc}
    return doc


def format_validation_error(prefix: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        given = err.get("input")
        # a whole section as "the value" (a model-level check) is noise, not a hint
        quotable = given is not None and not isinstance(given, dict | list)
        if err["type"] not in ("extra_forbidden", "missing") and quotable:
            # the offending value is quoted, unless it is (or holds) a secret
            key = next((p for p in reversed(err["loc"]) if isinstance(p, str)), "")
            shown = secrets.MASK if secrets.is_secret_key(key) else secrets.mask_config(given)
            msg += f" (got {shown!r})"
        lines.append(f"{loc}: {msg}")
    return "\n".join(lines)


def load(paths: list[str]) -> Config:
    raw = expand_env(read_files(paths))
    return validate(raw)


def validate(raw: dict[str, Any]) -> Config:
    try:
        return _validate(raw)
    except ConfigError as exc:
        # a validator's own message may quote a value: never let it be a secret
        masked = secrets.mask_text(str(exc), secrets.secret_values(raw))
        raise ConfigError(masked) from None


def _validate(raw: dict[str, Any]) -> Config:
    try:
        top = TopLevel.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error("", exc)) from None
    if top.connectors:
        raise ConfigError("connectors: not supported yet (no connector components exist)")

    components: dict[str, dict[ComponentID, Any]] = {kind: {} for kind in _SECTION_KIND.values()}
    for section, kind in _SECTION_KIND.items():
        for key, value in getattr(top, section).items():
            cid = ComponentID.parse(str(key))
            factory = registry.lookup(kind, cid.type)
            path = f"{section}.{key}"
            if factory is None:
                known = sorted(t for k, t in registry.factories() if k == kind)
                raise ConfigError(
                    f"{path}: unknown {kind} type {cid.type!r} (known: {', '.join(known)})"
                )
            try:
                components[kind][cid] = factory.config_model.model_validate(value or {})
            except ValidationError as exc:
                raise ConfigError(format_validation_error(path, exc)) from None

    service = top.service
    for cid, exporter_config in components[EXPORTER].items():
        storage = getattr(getattr(exporter_config, "sending_queue", None), "storage", None)
        if storage and ComponentID.parse(storage) not in components[EXTENSION]:
            raise ConfigError(
                f"exporters.{cid}.sending_queue.storage: references extension {storage!r} "
                f"which is not configured"
            )
    enabled = {ComponentID.parse(ext) for ext in service.extensions}
    for kind, section in ((RECEIVER, "receivers"), (EXPORTER, "exporters")):
        for cid, component_config in components[kind].items():
            refs = getattr(component_config, "extension_refs", None)
            for key, ext in refs() if refs else ():
                if ComponentID.parse(ext) not in enabled:
                    raise ConfigError(
                        f"{section}.{cid}.{key}: references extension {ext!r}, which must be "
                        f"configured under extensions and listed in service.extensions"
                    )
    for i, ext in enumerate(service.extensions):
        if ComponentID.parse(ext) not in components[EXTENSION]:
            raise ConfigError(
                f"service.extensions[{i}]: references extension {ext!r} which is not configured"
            )
    for pid, pipeline in service.pipelines.items():
        signal = pid.partition("/")[0]
        if signal not in SIGNALS:
            raise ConfigError(
                f"service.pipelines.{pid}: unknown signal {signal!r} "
                f"(expected traces, metrics or logs, optionally followed by /name)"
            )
        for section, kind in (
            ("receivers", RECEIVER),
            ("processors", PROCESSOR),
            ("exporters", EXPORTER),
        ):
            names: list[str] = getattr(pipeline, section)
            if len(set(names)) != len(names):
                raise ConfigError(f"service.pipelines.{pid}.{section}: listed twice: {names}")
            for i, name in enumerate(names):
                cid = ComponentID.parse(name)
                if cid not in components[kind]:
                    raise ConfigError(
                        f"service.pipelines.{pid}.{section}[{i}]: references {kind} {name!r} "
                        f"which is not configured"
                    )
                factory = registry.lookup(kind, cid.type)
                assert factory is not None
                if signal not in factory.signals:
                    raise ConfigError(
                        f"service.pipelines.{pid}.{section}[{i}]: {kind} {name!r} "
                        f"does not support {signal}"
                    )
    return Config(components=components, pipelines=service.pipelines, service=service, raw=raw)
