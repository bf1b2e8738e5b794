from client_registries import distribution, distribution_auth, tiny_model

__all__ = ["distribution", "distribution_auth", "tiny_model"]
