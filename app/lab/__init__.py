"""The offline workbench: evaluation (PROTOCOL.md figures), calibration fitting, learning,
explain, and their commands. It imports the core; the core and the service never import it."""
