"""Exact's rate and error budgets, shared through Redis."""
