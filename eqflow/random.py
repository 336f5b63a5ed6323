"""Counter-positioned random streams: one per ensemble cell, keyed by (seed, member, parameter point).

Cell (member label m, flat parameter index p) draws from PCG64 seeded with
``SeedSequence([seed, m, p, domain])`` and jumped (``advance``) to ``step * n`` outputs,
where n is the number of draws one step uses. The draws of step ``s`` are therefore a pure
function of (seed, m, p, s): they do not depend on chunking, workers or resume point, and
SeedSequence makes the streams of different cells independent.
"""
from __future__ import annotations

import math

import numpy as np

DYNAMICS, INITIAL = 0, 1


class CellStreams:
    """Uniform [0, 1) float64 draws for every cell of an ensemble chunk, one step at a time.

    Parameters
    ----------
    seed : int in [0, 2**64)
    member_labels : int array (member,), the ``member`` coordinate values of the chunk
    parameter_index : int array of the chunk's ensemble shape without ``member``: flat
        index of each parameter point in the full sweep
    draw_shape : shape of one cell's draws per step
    step : the first step to draw for (draws of step s drive the update s -> s + 1)
    domain : DYNAMICS for updates, INITIAL for initial states
    """

    def __init__(self, seed, member_labels, parameter_index, draw_shape, step, domain=DYNAMICS):
        self.draw_shape = tuple(draw_shape)
        self.size = math.prod(self.draw_shape)
        members = np.asarray(member_labels).reshape(-1)
        points = np.asarray(parameter_index).reshape(-1)
        self.ensemble_shape = (members.size, *np.shape(parameter_index))
        self.generators = [_generator(seed, int(m), int(p), domain, int(step) * self.size) for m in members for p in points]
        self.buffer = np.empty((len(self.generators), self.size))

    def next(self) -> np.ndarray:
        """Draws for the next step: float64 array of shape ensemble_shape + draw_shape (reused buffer)."""
        for row, generator in zip(self.buffer, self.generators):
            generator.random(out=row)
        return self.buffer.reshape(self.ensemble_shape + self.draw_shape)


def _generator(seed: int, member: int, point: int, domain: int, position: int) -> np.random.Generator:
    bits = np.random.PCG64(np.random.SeedSequence([int(seed), member, point, domain]))
    bits.advance(position)  # one 64-bit output per float64 draw
    return np.random.Generator(bits)
