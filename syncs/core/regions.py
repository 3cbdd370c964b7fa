"""Exact Online's regions (the host is https://start.exactonline.{region}); apart from settings so that the CLI
can name them in its help without loading pydantic."""

REGIONS = ("nl", "be", "de", "fr", "es", "co.uk", "com")
