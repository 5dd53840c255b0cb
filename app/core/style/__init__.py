"""Neural style transfer (Gatys et al.): costs, networks, the optimisation, result storage."""
