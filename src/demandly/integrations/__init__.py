"""Integrations with the outside world: e-mail, webhooks, CRMs, SMS."""
