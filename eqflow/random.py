"""Counter-based random streams: one per ensemble cell, keyed by (seed, member, parameter point).

Cell c of member label m at flat parameter index p draws from Philox4x64 with key
``(seed, m)`` and counter ``(step * blocks, 0, domain, p)``, where ``blocks`` is the number
of 4-value Philox blocks one step uses. The draws of step ``s`` are therefore a pure
function of (seed, m, p, s): they do not depend on chunking, workers or resume point.
"""
from __future__ import annotations

import math

import numpy as np

DYNAMICS, INITIAL = 0, 1


class CellStreams:
    """Uniform [0, 1) draws for every cell of an ensemble chunk, one step at a time.

    Parameters
    ----------
    seed : int in [0, 2**64)
    member_labels : int array (member,), the ``member`` coordinate values of the chunk
    parameter_index : int array of the chunk's ensemble shape without ``member``: flat
        index of each parameter point in the full sweep
    draw_shape : shape of one cell's draws per step
    step : the first step to draw for (draws of step s are "for the update s -> s+1")
    domain : DYNAMICS for updates, INITIAL for initial states
    """

    def __init__(self, seed, member_labels, parameter_index, draw_shape, step, domain=DYNAMICS):
        self.draw_shape = tuple(draw_shape)
        self.size = math.prod(self.draw_shape)
        blocks = -(-self.size // 4)
        members = np.asarray(member_labels, dtype=np.uint64)
        points = np.asarray(parameter_index, dtype=np.uint64)
        self.ensemble_shape = (members.size, *points.shape)
        self.generators = [
            np.random.Generator(
                np.random.Philox(key=[int(seed), int(m)], counter=[int(step) * blocks, 0, domain, int(p)])
            )
            for m in members
            for p in points.reshape(-1)
        ]
        self.buffer = np.empty((len(self.generators), 4 * blocks))

    def next(self) -> np.ndarray:
        """Draws for the next step: float64 array of shape ensemble_shape + draw_shape."""
        for row, generator in zip(self.buffer, self.generators):
            generator.random(out=row)
        return self.buffer[:, : self.size].reshape(self.ensemble_shape + self.draw_shape)
