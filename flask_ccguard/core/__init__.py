"""The framework-free core: token parsing, keys, claims, validation (no Flask)."""
