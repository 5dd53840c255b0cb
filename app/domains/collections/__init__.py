"""Collections: separate galleries, each with its own people, keys and 1:N threshold."""
