"""Everything about Exact Online: settings, the HTTP client, tokens, paging, rate budgets and entity syncs."""
