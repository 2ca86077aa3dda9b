"""E-mail over SMTP (STARTTLS, AUTH) with smtplib, in a worker thread so the event loop
never waits on a mail server."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

from processors.rules.channels.base import DeliveryError, Sender, text_body, title
from processors.rules.config import EmailChannel


class EmailSender(Sender):
    def __init__(self, name: str, config: EmailChannel) -> None:
        super().__init__(name)
        self.config = config

    def _tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.config.ca_file)
        if self.config.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _deliver(self, msg: EmailMessage) -> None:
        cfg = self.config
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout) as smtp:
                smtp.ehlo()
                if cfg.starttls:
                    smtp.starttls(context=self._tls())
                    smtp.ehlo()
                if cfg.username:
                    smtp.login(cfg.username, cfg.password or "")
                smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP authentication failed: {exc}", permanent=True) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"SMTP recipients refused: {exc}", permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc

    async def send(self, notification: dict[str, Any]) -> None:
        msg = EmailMessage()
        msg["Subject"] = title(notification)
        msg["From"] = self.config.from_
        msg["To"] = ", ".join(self.config.to)
        msg["X-Airis-Rule"] = notification["rule"]["id"]
        msg.set_content(text_body(notification))
        await asyncio.to_thread(self._deliver, msg)
