"""mdl.cli."""
