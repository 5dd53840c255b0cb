"""API keys: hashed storage, scopes, and the request authentication dependency."""
