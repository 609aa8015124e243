"""MO suggestions of a request (issue 10): the closest MOs by meaning (or lexically without the
`ai` extra), computed by the worker and stored here, and analysts' confirmations as labels."""
