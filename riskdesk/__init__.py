"""Operator tooling: the `riskdesk` command, the local stack launcher and the Temporal dev server."""
