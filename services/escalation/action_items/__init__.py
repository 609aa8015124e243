"""Action items of an escalation: one owner, a due date, a status machine."""
