"""The doors' parsing (API v2 alerts, Alertmanager webhooks, detector events) and the alert store."""
