"""Stand-ins for services that cannot be reached from here, run for real on loopback."""
