"""A CompreFace-compatible REST API under /api/v1/ (docs/compat-compreface.md)."""
