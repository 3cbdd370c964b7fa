"""The sync engine: streams with their cursor rules, deletions, a division's run."""
