"""mdl.registry."""
