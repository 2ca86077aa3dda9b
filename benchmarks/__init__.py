"""Load generation and side-by-side measurements against the OpenTelemetry Collector."""
