"""Enrolled people and their face embeddings."""
