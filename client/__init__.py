"""mdl.client."""
