"""Threshold calibration: choose tau from a labelled set for a target FAR (1:1) or FPIR
(1:N), with confidence intervals, a model of how FPIR grows with the gallery size, and
the stored calibration the service uses as its defaults."""
