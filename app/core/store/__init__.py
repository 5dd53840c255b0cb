"""The persistence kernel: engine and sessions, the one declarative base, the embedding byte
format, rows, repositories, and the FAISS index that follows the database."""
