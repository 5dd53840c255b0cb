"""Neural style transfer (Gatys et al.) as durable asynchronous jobs (issue 6)."""
