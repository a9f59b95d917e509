"""Alerts: send rules, the durable webhook outbox, delivery lanes, the payload and the SSRF guard."""
