"""What the service runs on: the model, the inference pool, the decision, the store, style
transfer, settings and errors. It imports nothing from the HTTP layer, the domains or the lab."""
