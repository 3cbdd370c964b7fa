"""Entities: one declaration per Exact entity (`catalog/`), the vocabulary (`declaration`), compiled mappers
(`mapper`), writers (`writer`), special-behaviour hooks (`hooks`) and the runtime registry (`registry`).

This package's own import is kept free of `models` (which builds its tables from the catalog)."""
