"""facesvc: face verification (1:1) and recognition (1:N) with one-shot enrollment."""

__version__ = "0.1.0"
