"""riskdesk services: the gateway and the domain services behind it."""
