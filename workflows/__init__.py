"""Every clock and long wait of riskdesk, as Temporal workflows with their activities."""
