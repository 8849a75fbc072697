"""The JACK and ALSA client libraries print to stderr themselves; this stops them."""

from __future__ import annotations

import ctypes


def silence_client_libraries() -> None:
    """Stop the JACK and ALSA client libraries loaded so far printing to stderr themselves (call it after loading one).

    Each failed connect printed five lines of JACK's (one of ALSA's where there is no sequencer): around the one
    line of 'daw-bridge midi ports', into the daemon's log each time it looked for a controller while JACK was
    down (thousands an hour), and at each audition. Our own messages say what failed. The handler is libc's
    strlen, which reads its first argument and returns: a Python callback could be called by a library thread after
    the interpreter has ended. python-rtmidi's wheel carries its own libjack, so the libraries are found where this
    process loaded them.
    """
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if "/libjack" in line or "/libasound" in line}
        ignore = ctypes.cast(ctypes.CDLL(None).strlen, ctypes.c_void_p)
    except (OSError, AttributeError):  # not Linux: nothing is known to print there
        return
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for setter in ("jack_set_error_function", "jack_set_info_function", "snd_lib_error_set_handler"):
            if hasattr(library, setter):
                getattr(library, setter)(ignore)
