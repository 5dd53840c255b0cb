"""The operator's console: static pages at /console, and /v1/whoami they sign in with."""
