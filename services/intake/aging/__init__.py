"""Aging alerts: how old and how idle open requests are, in business days (issue 3, item 8)."""
