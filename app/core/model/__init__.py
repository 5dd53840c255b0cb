"""The face pipeline: decode -> detect -> align -> embed -> distance."""
