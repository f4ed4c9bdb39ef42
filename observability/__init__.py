"""Observability: JSON log lines, systemd notifications, the Prometheus exporter and metrics."""
