"""The service's domains, one package each: endpoints (router.py), a service built in the
lifespan (service.py) and the bodies (schemas.py). Domains do not import each other."""
