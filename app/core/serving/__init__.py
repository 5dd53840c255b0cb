"""Running the face pipeline off the event loop."""
