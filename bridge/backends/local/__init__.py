"""The embedded engine: offline, free, and honest about what a song offers.

It fills a range (inpaint) or continues a song (extend) with the song's own passages, chosen by how well their
surroundings match and joined on the beat. Modules, in the order a job uses them:

- ``analysis``: beats and per-cell features of a song (one STFT); ``cache``: those, stored by content hash
- ``similarity``: how alike two moments are, context and switch costs, confidence
- ``inpaint`` / ``extend``: the searches that produce ``plans`` (passages and join costs)
- ``joins`` / ``render``: alignment, crossfades, loudness, varispeed; a plan turned into audio
- ``engine``: one job in a worker process; ``backend``: ``LocalBackend`` for the core
"""
