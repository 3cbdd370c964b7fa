"""Connections over time: connect flow, divisions, export/import, keep-alive."""
