"""Audio as plain functions on arrays and files. Arrays are float32, shaped (frames, channels)."""
