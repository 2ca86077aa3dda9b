"""`otlp_http`: the Collector 0.165 name of the OTLP/HTTP exporter (`otlphttp` is its alias)."""

from __future__ import annotations

import dataclasses

from exporters.otlphttp import factory as _otlphttp

factory = dataclasses.replace(_otlphttp, type="otlp_http")
