"""The in-memory FAISS gallery index."""
