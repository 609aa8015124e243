"""Comments on requests: public and internal, edit history, first response and requester turns."""
