"""Detection rules: the inventory, weekly metric snapshots, deprecation candidates and the monitored
deprecation (RuleDeprecationWorkflow)."""
