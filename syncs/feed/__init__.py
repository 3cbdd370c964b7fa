"""Telling the user's application what changed: the `changes` table, Postgres NOTIFY, outgoing webhooks."""
