"""Exact Online's API: the httpx client, its budgeted transport, Auth, OAuth, OData envelopes, value readers."""
