"""Operator tooling: the `riskdesk` command, the stack launcher and the Temporal dev server."""
