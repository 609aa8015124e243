"""The person directory: who an action item's owner is, their manager, and their calendar.

The overdue ladder's "owner's manager" and the owner's business calendar (quiet hours, default due
dates) come from here; see `resolution.py` for the rules.
"""
