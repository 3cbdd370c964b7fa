"""Shared core: settings, database, clock, logging, errors, encryption."""
