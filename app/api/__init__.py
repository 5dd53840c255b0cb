"""HTTP plumbing shared by all routers: error bodies, request bodies, limits, metrics."""
