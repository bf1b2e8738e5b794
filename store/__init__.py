"""mdl.store."""
