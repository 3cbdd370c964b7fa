"""Exact Online webhooks: verifying deliveries, recording events, debounced targeted syncs, subscriptions."""
