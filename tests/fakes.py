"""Test doubles for *time* only (the issue asks for time-dependent logic on an injected clock)."""

from __future__ import annotations

import asyncio

from otlp.exporterhelper import Clock


class FakeClock(Clock):
    """Sleeping advances the clock instantly; `sleeps` records every requested delay."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)
