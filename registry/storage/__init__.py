"""Storage backends: the ``StorageDriver`` interface and its implementations."""
