"""API keys: how partner teams and staff authenticate to the gateway."""
