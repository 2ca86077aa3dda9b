"""Config of the `rules` processor: alert rules (the seed's AlertRule fields plus grouping,
timing and escalation), the notification channels they name, and where state is kept.

Rules are validated one by one so that an error names the rule (`rules[2] (id
'disk-full'): conditions.0.operator: ...`), and every channel a rule names must exist."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from otlp.component import ComponentConfig
from otlp.confmodels import Duration
from otlp.ottl import Condition

Operator = Literal["gt", "lt", "eq", "ne", "gte", "lte"]
Severity = Literal["low", "medium", "high", "critical"]
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


class Matcher(ComponentConfig):
    """An attribute matcher, as Prometheus label matchers: `=`, `!=`, `=~`, `!~` (regexes
    are anchored at both ends, as in Prometheus)."""

    key: str
    value: str
    op: Literal["=", "!=", "=~", "!~"] = "="


class _ConditionBase(ComponentConfig):
    operator: Operator
    threshold: float
    # the span of recent data (by arrival time) the aggregation covers
    window: Duration = Field(60.0, gt=0)
    # how long the comparison must hold before the alert fires (adds to the rule's `for`)
    duration: Duration = Field(0.0, ge=0)


class MetricCondition(_ConditionBase):
    signal: Literal["metrics"]
    metric: str = Field(min_length=1)
    # data point attributes, then resource attributes, are matched
    match: list[Matcher] = Field(default_factory=list)
    aggregation: Literal["avg", "min", "max", "sum", "count", "rate", "percentile"] = "avg"
    # 0..100, for `aggregation: percentile` (histograms, or the values of gauges and sums)
    percentile: float = Field(99.0, gt=0, le=100)


class _OttlCondition(_ConditionBase):
    """A condition over records selected by OTTL conditions (ORed) in `ottl_context`; one
    condition may be written as a plain string."""

    ottl_context: ClassVar[str]
    condition: list[str] = Field(default_factory=list)

    @field_validator("condition", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("condition")
    @classmethod
    def _compile(cls, value: list[str]) -> list[str]:
        Condition(value, cls.ottl_context)
        return value


class LogCondition(_OttlCondition):
    ottl_context = "log"
    signal: Literal["logs"]
    # OTTL conditions in the log context, ORed; empty: every log record counts
    condition: list[str] = Field(default_factory=list)
    # `count` of matching records in the window, or `rate` per second
    aggregation: Literal["count", "rate"] = "count"


class TraceCondition(_OttlCondition):
    ottl_context = "span"
    signal: Literal["traces"]
    # error_rate: spans with status ERROR / all spans (0..1); latency: a duration
    # percentile in milliseconds
    measure: Literal["error_rate", "latency"]
    percentile: float = Field(99.0, gt=0, le=100)
    # OTTL conditions in the span context selecting the spans considered (ORed)
    condition: list[str] = Field(default_factory=list)
    # fewer spans than this in the window: the group is not evaluated (no verdict)
    min_spans: int = Field(1, ge=1)


RuleCondition = Annotated[
    MetricCondition | LogCondition | TraceCondition, Field(discriminator="signal")
]


class EscalationTier(ComponentConfig):
    # firing this long → these channels are notified too (and from then on)
    after: Duration = Field(gt=0)
    channels: list[str] = Field(min_length=1)


class Rule(ComponentConfig):
    id: str = Field(min_length=1)
    name: str = ""
    description: str = ""
    conditions: list[RuleCondition] = Field(min_length=1)
    severity: Severity = "medium"
    channels: list[str] = Field(default_factory=list)
    enabled: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    # label keys making separate alert instances: data point / span / log attributes,
    # then resource attributes; `span.name` names the operation of a span
    group_by: list[str] = Field(default_factory=list)
    # how long the conditions must hold before pending turns firing (`duration` accepted too)
    for_: Duration = Field(0.0, ge=0, alias="for")
    # how long the conditions must be false before a firing alert resolves
    resolve_after: Duration = Field(0.0, ge=0)
    # a still-firing alert is notified again this often (0: never)
    repeat_interval: Duration = Field(4 * 3600.0, ge=0)
    escalation: list[EscalationTier] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _duration_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "duration" in data:
            data = dict(data)
            if "for" in data:
                raise ValueError("give either `for` or `duration`, not both")
            data["for"] = data.pop("duration")
        return data

    @property
    def pending_for(self) -> float:
        return self.for_ + max(c.duration for c in self.conditions)

    @property
    def display_name(self) -> str:
        return self.name or self.id

    def all_channels(self) -> set[str]:
        return set(self.channels) | {c for tier in self.escalation for c in tier.channels}


class RetryConfig(ComponentConfig):
    initial_interval: Duration = Field(1.0, gt=0)
    max_interval: Duration = Field(30.0, gt=0)
    multiplier: float = Field(2.0, ge=1)
    # give up on one notification after this long (0: keep trying)
    max_elapsed_time: Duration = Field(300.0, ge=0)


class _ChannelBase(ComponentConfig):
    timeout: Duration = Field(10.0, gt=0)
    # notifications waiting for this channel; beyond it new ones are dropped and counted
    queue_size: int = Field(100, ge=1)
    retry: RetryConfig = Field(default_factory=RetryConfig)


class WebhookChannel(_ChannelBase):
    type: Literal["webhook"]
    url: str
    headers: dict[str, str] = Field(default_factory=dict)


class SlackChannel(_ChannelBase):
    type: Literal["slack"]
    webhook_url: str
    channel: str | None = None
    username: str | None = None


class EmailChannel(_ChannelBase):
    type: Literal["email"]
    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password: str | None = None
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    # a CA bundle to verify the server's certificate (default: the system's)
    ca_file: str | None = None
    insecure_skip_verify: bool = False


class AlertmanagerChannel(_ChannelBase):
    type: Literal["alertmanager"]
    # the Alertmanager's base URL; alerts go to {url}/api/v2/alerts
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    # firing alerts are sent again this often with `endsAt` 4 intervals ahead (as
    # Prometheus does), so Alertmanager keeps them active and resolves them by itself if
    # this collector goes away
    resend_interval: Duration = Field(60.0, gt=0)


class SmsChannel(_ChannelBase):
    type: Literal["sms"]
    # the provider's HTTP API; string.Template placeholders ($to, $message, $message_json,
    # $rule_id, $severity, $status) are filled in the URL and the body
    url: str
    method: Literal["POST", "PUT", "GET"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body_template: str = '{"to": "$to", "message": $message_json}'
    to: list[str] = Field(min_length=1)


ChannelConfig = Annotated[
    WebhookChannel | SlackChannel | EmailChannel | AlertmanagerChannel | SmsChannel,
    Field(discriminator="type"),
]


def _parse_rules(raw: list[Any], where: str) -> list[Rule]:
    """Each rule validated on its own, so the error names it."""
    rules: list[Rule] = []
    for i, item in enumerate(raw):
        rule_id = item.get("id") if isinstance(item, dict) else None
        try:
            rules.append(Rule.model_validate(item))
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(rule)'}: {err['msg']}"
                + (
                    f" (got {err['input']!r})"
                    if isinstance(err.get("input"), str | int | float)
                    and "invalid duration" not in err["msg"]
                    else ""
                )
                for err in exc.errors()
            )
            raise ValueError(f"rule {rule_id!r} ({where}[{i}]): {details}") from None
    return rules


def load_rules_file(path: str) -> list[Rule]:
    """A YAML file holding a list of rules, or a mapping with a `rules` list."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"rules_file {path!r}: {exc}") from None
    if isinstance(doc, dict):
        doc = doc.get("rules", [])
    if doc is None:
        doc = []
    if not isinstance(doc, list):
        raise ValueError(f"rules_file {path!r}: expected a list of rules")
    return _parse_rules(doc, f"rules_file {path!r} rules")


class RulesConfig(ComponentConfig):
    rules: list[dict[str, Any]] = Field(default_factory=list)
    # more rules in a YAML file, re-read on SIGHUP (a bad file keeps the previous rules)
    rules_file: str | None = None
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    evaluation_interval: Duration = Field(10.0, gt=0)
    # where alert state lives: a file_storage extension id (the file goes in its directory)
    # or an explicit file; neither: state is kept in memory only
    storage: str | None = None
    state_file: str | None = None
    # label keys a higher-severity firing alert must share with a lower one to inhibit it;
    # empty: all group labels of both must be equal
    inhibit_equal: list[str] = Field(default_factory=list)
    # how long shutdown waits for queued notifications
    shutdown_timeout: Duration = Field(5.0, ge=0)

    @model_validator(mode="after")
    def _check_rules(self) -> RulesConfig:
        self.parsed_rules()
        return self

    def parsed_rules(self) -> list[Rule]:
        """The inline rules and the rules file's, checked together (ids unique, channels
        configured); raises ValueError naming the rule."""
        rules = _parse_rules(self.rules, "rules")
        if self.rules_file:
            rules += load_rules_file(self.rules_file)
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                raise ValueError(f"rule {rule.id!r}: duplicate rule id")
            seen.add(rule.id)
            missing = sorted(rule.all_channels() - set(self.channels))
            if missing:
                raise ValueError(
                    f"rule {rule.id!r}: unknown channel {missing[0]!r} "
                    f"(configured: {', '.join(sorted(self.channels)) or 'none'})"
                )
        return rules
