"""mdl.runtime."""
