"""The gateway: the only public entry of riskdesk.

It authenticates API keys, applies roles and rate limits, forwards `/api/v1/...` calls to the
service that owns them with a signed identity token, reports readiness of the whole system and
serves one OpenAPI document for the whole public API.
"""
