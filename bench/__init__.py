"""The token store's hot-path benchmark: ``python -m bench.run`` (see bench/README.md)."""
