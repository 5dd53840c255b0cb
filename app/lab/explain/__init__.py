"""What the embedding network's units respond to: its layers with their receptive
fields, and the image patches that activate chosen units most."""
