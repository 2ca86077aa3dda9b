"""Jaeger."""
