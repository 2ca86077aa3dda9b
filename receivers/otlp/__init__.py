"""otlp receiver: OTLP over gRPC (:4317) and HTTP (:4318, protobuf and JSON), as the
Collector's otlpreceiver, with its config keys and defaults (bound to localhost)."""

from __future__ import annotations

from otlp.component import RECEIVER, Factory
from receivers.otlp.config import OTLPReceiverConfig
from receivers.otlp.receiver import OTLPReceiver, create

factory = Factory(
    type="otlp",
    kind=RECEIVER,
    config_model=OTLPReceiverConfig,
    create=create,
    description="OTLP over gRPC and HTTP (protobuf and JSON)",
)

__all__ = ["OTLPReceiver", "OTLPReceiverConfig", "factory"]
