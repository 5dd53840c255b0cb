"""Every query of the service, one module per table group; repositories only flush."""
