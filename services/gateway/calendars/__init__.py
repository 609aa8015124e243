"""Business calendars: named time zones, weekly hours and holidays that SLA clocks count in."""
