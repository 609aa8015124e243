"""A request's events as its lifecycle workflow receives them, for the workflow's catch-up."""
