"""Verify (1:1), compare, recognize (1:N) and detect."""
