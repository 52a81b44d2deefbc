"""Self-hosting the function past one Edge worker: a runtime bundle to ship, and the Kubernetes
objects that run a fleet of it."""
