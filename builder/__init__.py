"""mdl.builder."""
