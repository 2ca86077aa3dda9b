"""Notification channels: each turns one grouped notification (a JSON-ready dict, see
processors/rules/lifecycle.py and the README) into its wire format and delivers it."""

from __future__ import annotations

from processors.rules.channels.base import DeliveryError, Sender
from processors.rules.channels.email import EmailSender
from processors.rules.channels.http import (
    AlertmanagerSender,
    SlackSender,
    SmsSender,
    WebhookSender,
)
from processors.rules.config import (
    AlertmanagerChannel,
    ChannelConfig,
    EmailChannel,
    SlackChannel,
    SmsChannel,
    WebhookChannel,
)

__all__ = ["DeliveryError", "Sender", "build_sender"]


def build_sender(name: str, config: ChannelConfig) -> Sender:
    if isinstance(config, WebhookChannel):
        return WebhookSender(name, config)
    if isinstance(config, SlackChannel):
        return SlackSender(name, config)
    if isinstance(config, EmailChannel):
        return EmailSender(name, config)
    if isinstance(config, AlertmanagerChannel):
        return AlertmanagerSender(name, config)
    if isinstance(config, SmsChannel):
        return SmsSender(name, config)
    raise ValueError(f"unknown channel type for {name!r}")
