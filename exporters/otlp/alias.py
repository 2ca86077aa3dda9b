"""`otlp_grpc`: the Collector 0.165 name of the OTLP/gRPC exporter (`otlp` is its alias)."""

from __future__ import annotations

import dataclasses

from exporters.otlp import factory as _otlp

factory = dataclasses.replace(_otlp, type="otlp_grpc")
