"""Generators. Each implements :class:`bridge.backends.base.Backend`; the core knows nothing else about them."""
