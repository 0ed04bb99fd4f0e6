"""Observability: Prometheus metrics and the health check."""
