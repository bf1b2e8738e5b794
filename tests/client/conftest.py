from client_registries import distribution, distribution_auth, mdl_registry, tiny_model

__all__ = ["distribution", "distribution_auth", "mdl_registry", "tiny_model"]
