"""Access control: htpasswd basic auth, bearer tokens, a per-repository policy, read-only."""
