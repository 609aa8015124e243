"""The systemic-gap register: gaps found along the way, their impact and closure."""
