"""mdl's OCI distribution registry (distribution-spec v1.1) on Starlette; see docs/registry.md."""
