"""Alerts and anomaly flags: conditions judged after every run, flags kept in their own table,
messages delivered to webhooks (README: Alerts and anomaly flags)."""
