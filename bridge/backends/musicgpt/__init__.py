"""The MusicGPT cloud backend. Import :class:`MusicGPTBackend` from ``bridge.backends.musicgpt.backend``."""
