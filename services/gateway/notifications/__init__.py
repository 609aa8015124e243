"""Notifications: subscriptions by team and event type, event fan-out, signed webhook and e-mail delivery."""
