"""One module per command; each exposes ``main`` for its console script."""
