"""The Azure gateway: the only package that imports azure.* (always lazily, inside functions)."""
