"""Channels over HTTP: generic webhook (JSON), Slack incoming webhook, Prometheus
Alertmanager (v2 API) and SMS through a provider's HTTP API."""

from __future__ import annotations

import json
import re
import time
from string import Template
from typing import Any

import httpx

from processors.rules.channels.base import (
    DeliveryError,
    Sender,
    common_labels,
    text_body,
    title,
)
from processors.rules.config import (
    AlertmanagerChannel,
    SlackChannel,
    SmsChannel,
    WebhookChannel,
)
from processors.rules.lifecycle import iso

_SLACK_COLOR = {"resolved": "#2eb886", "low": "#439fe0", "medium": "#daa038"}
_LABEL_NAME = re.compile(r"[^A-Za-z0-9_]")


class _HttpSender(Sender):
    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(name)
        self.client = httpx.AsyncClient(timeout=timeout)

    async def request(self, method: str, url: str, **kwargs: Any) -> None:
        try:
            resp = await self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 300:
            # 429 and 5xx may pass; any other refusal will not change on a retry
            permanent = resp.status_code < 500 and resp.status_code != 429
            raise DeliveryError(f"HTTP {resp.status_code}: {resp.text[:200]}", permanent=permanent)

    async def close(self) -> None:
        await self.client.aclose()


def webhook_payload(receiver: str, notification: dict[str, Any]) -> dict[str, Any]:
    """The generic webhook document (documented in the README)."""
    return {
        "version": "1",
        "receiver": receiver,
        "status": notification["status"],
        "reason": notification["reason"],
        "groupKey": notification["groupKey"],
        "rule": notification["rule"],
        "commonLabels": common_labels(notification),
        "alerts": notification["alerts"],
        "time": notification["time"],
    }


class WebhookSender(_HttpSender):
    def __init__(self, name: str, config: WebhookChannel) -> None:
        super().__init__(name, config.timeout)
        self.config = config

    async def send(self, notification: dict[str, Any]) -> None:
        await self.request(
            "POST",
            self.config.url,
            json=webhook_payload(self.name, notification),
            headers=self.config.headers,
        )


class SlackSender(_HttpSender):
    """Slack's incoming-webhook message: `text` plus one attachment per notification."""

    def __init__(self, name: str, config: SlackChannel) -> None:
        super().__init__(name, config.timeout)
        self.config = config

    async def send(self, notification: dict[str, Any]) -> None:
        rule = notification["rule"]
        status = notification["status"]
        color = _SLACK_COLOR.get(
            "resolved" if status == "resolved" else rule["severity"], "#a30200"
        )
        body: dict[str, Any] = {
            "text": title(notification),
            "attachments": [
                {
                    "color": color,
                    "title": title(notification),
                    "text": text_body(notification),
                    "fields": [
                        {"title": "severity", "value": rule["severity"], "short": True},
                        {"title": "rule", "value": rule["id"], "short": True},
                    ],
                }
            ],
        }
        if self.config.channel:
            body["channel"] = self.config.channel
        if self.config.username:
            body["username"] = self.config.username
        await self.request("POST", self.config.webhook_url, json=body)


def _am_labels(labels: dict[str, str]) -> dict[str, str]:
    # Alertmanager's classic label names: letters, digits, underscores (service.name →
    # service_name), values as strings
    return {_LABEL_NAME.sub("_", k): str(v) for k, v in labels.items()}


class AlertmanagerSender(_HttpSender):
    """POST /api/v2/alerts: Alertmanager then routes, groups, silences and inhibits as it is
    configured. A resolution is the same alert with `endsAt` set."""

    def __init__(self, name: str, config: AlertmanagerChannel) -> None:
        super().__init__(name, config.timeout)
        self.config = config

    async def send(self, notification: dict[str, Any]) -> None:
        alerts = []
        for alert in notification["alerts"]:
            doc: dict[str, Any] = {
                "labels": _am_labels(alert["labels"]),
                "annotations": {k: v for k, v in alert["annotations"].items() if v},
                "startsAt": alert["startsAt"],
                "generatorURL": f"airis://rules/{notification['rule']['id']}",
            }
            if alert["endsAt"]:
                doc["endsAt"] = alert["endsAt"]
            else:
                doc["endsAt"] = iso(time.time() + 4 * self.config.resend_interval)
            if alert.get("value") is not None:
                doc["annotations"]["value"] = f"{alert['value']:g}"
            alerts.append(doc)
        url = self.config.url.rstrip("/") + "/api/v2/alerts"
        await self.request("POST", url, json=alerts, headers=self.config.headers)


class SmsSender(_HttpSender):
    """One request per recipient, URL and body filled from string.Template placeholders."""

    def __init__(self, name: str, config: SmsChannel) -> None:
        super().__init__(name, config.timeout)
        self.config = config

    async def send(self, notification: dict[str, Any]) -> None:
        message = text_body(notification)
        for to in self.config.to:
            values = {
                "to": to,
                "message": message,
                "message_json": json.dumps(message),
                "rule_id": notification["rule"]["id"],
                "severity": notification["rule"]["severity"],
                "status": notification["status"],
            }
            url = Template(self.config.url).safe_substitute(values)
            body = Template(self.config.body_template).safe_substitute(values)
            kwargs: dict[str, Any] = {"headers": self.config.headers}
            if self.config.method != "GET":
                kwargs["content"] = body.encode()
            await self.request(self.config.method, url, **kwargs)
