"""Plugin hosts the tests and the bench drive: a CLAP host built from C, and a stand-in daemon on a UDP socket."""
