"""Exact's token pair: the stored pair, the refresher, rescue copies."""
