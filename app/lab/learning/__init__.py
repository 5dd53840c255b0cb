"""Learning tools: triplet-loss training of a projection head (or the backbone's last
blocks) and a learned pair verifier, both evaluated on held-out identities."""
