"""daw-bridge: have regions of a song inpainted or extended from inside your DAW."""

__version__ = "0.1.0"
