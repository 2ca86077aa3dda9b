"""Jaeger api_v2 (package `jaeger.api_v2`): model.proto, collector.proto and their modules."""
