"""OP1 initiatives: ideas with an expected return, scored, planned on a roadmap, measured."""
