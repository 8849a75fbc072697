"""How the search compares moments of a song: the batched jump costs a long gap's search relies on for speed."""

from __future__ import annotations

import numpy as np

from bridge.backends.local.analysis import analyse
from bridge.backends.local.similarity import cell_space, switch_cost, switch_matrix
from tests.songs import make_song_array


def test_every_jump_between_candidate_passages_costs_what_a_single_jump_costs():
    """The inpaint search prices all jumps between its candidate lags at once; the figures must be the ones a
    single jump gets, at the song's edges and next to the hidden range too."""
    audio, sr = make_song_array(30.0, seed=4)
    space = cell_space(analyse(audio, sr), hidden=(12.0, 15.0))
    cells = np.array([0, 3, 40, 200, 250, 300, 330, space.size - 20, space.size - 1])
    batched = switch_matrix(space, cells, cells[::-1])
    single = switch_cost(space, cells[:, None], cells[::-1][None, :])
    np.testing.assert_allclose(batched, single, atol=1e-6)
