"""The intake service: partner requests, their state machine and their audit events."""
