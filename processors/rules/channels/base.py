"""What every channel shares: the sender interface, its error, and message text."""

from __future__ import annotations

from typing import Any


class DeliveryError(Exception):
    """A failed delivery; `permanent` ones (the receiver refused the request as invalid)
    are not retried."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sender:
    def __init__(self, name: str) -> None:
        self.name = name

    async def send(self, notification: dict[str, Any]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        pass


def common_labels(notification: dict[str, Any]) -> dict[str, str]:
    alerts = notification["alerts"]
    if not alerts:
        return {}
    first = dict(alerts[0]["labels"])
    return {k: v for k, v in first.items() if all(a["labels"].get(k) == v for a in alerts[1:])}


def title(notification: dict[str, Any]) -> str:
    rule = notification["rule"]
    status = notification["status"].upper()
    return f"[{status}:{len(notification['alerts'])}] {rule['name']} ({rule['severity']})"


def alert_line(alert: dict[str, Any]) -> str:
    labels = ", ".join(
        f"{k}={v}"
        for k, v in alert["labels"].items()
        if k not in ("alertname", "rule_id", "severity")
    )
    value = alert.get("value")
    shown = f" value={value:g}" if isinstance(value, int | float) else ""
    return f"- {labels or '(no labels)'}{shown} since {alert['startsAt']}"


def text_body(notification: dict[str, Any]) -> str:
    rule = notification["rule"]
    lines = [title(notification)]
    if rule["description"]:
        lines.append(rule["description"])
    lines.extend(alert_line(a) for a in notification["alerts"])
    return "\n".join(lines)
