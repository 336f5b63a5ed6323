"""Stop rules: each ensemble member's outcome is data, never an exception.

``eq.run(..., stop=eq.stop.converged("residual", 1e-8))``, ``stop=eq.stop.equilibrated("energy")``
or ``stop=eq.stop.cycled("action")``. Every member ends with a ``stop_reason`` (see
:mod:`eqflow.outcomes`: converged, equilibrated, diverged, max_steps, cycled), the step it stopped at
(``stopped_at``) and where its equilibrium window starts (``equilibrated_at``). A stopped member's state is frozen;
a chunk whose members have all stopped does no more work; ``steps`` stays the hard limit.
A state that becomes NaN or infinite stops that member as ``diverged``, with or without rules.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from .outcomes import EQUILIBRATED, RUNNING, mark


@dataclass(frozen=True)
class Converged:
    """Stop a member when ``|var| < tol`` (evaluated after every step, inside the task)."""

    var: str
    tol: float

    def reached(self, value: np.ndarray) -> np.ndarray:
        return np.abs(value) < self.tol


@dataclass(frozen=True)
class Equilibrated:
    """Stop when ``var`` is equilibrated (checked every ``check_every`` steps, on the client).

    per="point": at a parameter point, every member's equilibration start t0 is detected
    (Chodera 2016); on the window after the latest t0, the rank-normalized split R-hat across
    members must be below ``rhat`` and the bulk ESS at least ``min_ess``. per="member": a
    member stops when its own effective sample size after t0 reaches ``min_ess``.
    """

    var: str
    rhat: float = 1.01
    min_ess: float = 400.0
    check_every: int = 200
    min_steps: int = 100
    per: str = "point"


@dataclass(frozen=True)
class Cycled:
    """Stop a member whose ``var`` returns to a value it had 2..``period`` steps ago (a limit cycle).

    Compared within ``tol`` (max absolute difference over the variable's own dims; 0: exactly,
    for discrete dynamics). A value equal to the previous step's is a fixed point, not a cycle:
    pair this rule with ``converged`` for that. Evaluated after every step, inside the task;
    the last ``period`` values are kept as checkpointed state, so detection does not depend on
    segmenting or resuming.
    """

    var: str
    period: int = 2
    tol: float = 0.0

    @property
    def buffer_name(self) -> str:
        return f"cycle_buffer_{self.var}"

    def new_buffer(self, value: np.ndarray, ensemble_ndim: int) -> np.ndarray:
        """History of the start ``value`` (*E, *own): float64 (*E, period, prod(own)), NaN before it."""
        shape = value.shape[:ensemble_ndim]
        buffer = np.full((*shape, self.period, int(np.prod(value.shape[ensemble_ndim:], dtype=np.int64))), np.nan)
        buffer[..., -1, :] = value.reshape((*shape, -1))
        return buffer

    def check(self, value, buffer):
        """(cycled, new buffer): ``value`` (*E, *own) against ``buffer`` (*E, period, K), newest last."""
        from .backends import namespace

        xp = namespace(buffer)
        ensemble = buffer.shape[:-2]
        current = xp.reshape(xp.astype(value, buffer.dtype), (*ensemble, 1, buffer.shape[-1]))
        gap = xp.max(xp.abs(buffer - current), axis=-1)  # (*E, period); NaN where not yet filled
        same = gap <= self.tol
        return xp.any(same[..., :-1], axis=-1) & ~same[..., -1], xp.concat([buffer[..., 1:, :], current], axis=-2)


def cycled(var: str, period: int = 2, tol: float = 0.0) -> Cycled:
    """Rule for iterations that can end in a limit cycle (best response, plain SCF); see :class:`Cycled`."""
    if not (isinstance(period, int) and not isinstance(period, bool) and period >= 2):
        raise ValueError(f"period: expected an integer >= 2 (the longest cycle looked for), got {period!r}")
    if not tol >= 0:
        raise ValueError(f"tol: expected a tolerance >= 0, got {tol!r}")
    return Cycled(var, period, float(tol))


def converged(var: str, tol: float) -> Converged:
    """Rule for deterministic iterations: stop each member once ``|var| < tol``."""
    if not tol > 0:
        raise ValueError(f"tol: expected a positive tolerance, got {tol!r}")
    return Converged(var, float(tol))


def equilibrated(var: str, *, rhat: float = 1.01, min_ess: float = 400.0, check_every: int = 200,
                 min_steps: int = 100, per: str = "point") -> Equilibrated:
    """Rule for stochastic runs; see :class:`Equilibrated`."""
    problems = []
    if per not in ("point", "member"):
        problems.append(f"per: expected 'point' or 'member', got {per!r}")
    if not (isinstance(check_every, int) and check_every > 0):
        problems.append(f"check_every: expected a positive integer number of steps, got {check_every!r}")
    if not rhat > 1:
        problems.append(f"rhat: expected a threshold > 1, got {rhat!r}")
    if problems:
        raise ValueError("; ".join(problems))
    return Equilibrated(var, float(rhat), float(min_ess), check_every, min_steps, per)


def as_rules(stop) -> tuple:
    if stop is None:
        return ()
    rules = tuple(stop) if isinstance(stop, (list, tuple)) else (stop,)
    for rule in rules:
        if not isinstance(rule, (Converged, Equilibrated, Cycled)):
            raise TypeError(f"stop: expected eq.stop.converged(...), eq.stop.equilibrated(...) or eq.stop.cycled(...), "
                            f"got {rule!r}")
    return rules


def evaluate_equilibrated(rule: Equilibrated, outcomes: dict, history: np.ndarray, steps: np.ndarray, now: int,
                          dims: list[str]) -> None:
    """Apply an equilibrated rule at step ``now`` to the running members.

    history : records of ``rule.var`` at ``steps``, shape (len(steps), *ensemble shape).
    """
    from . import diagnostics

    if len(steps) < max(rule.min_steps, 8):
        return
    da = xr.DataArray(history, dims=["step", *dims])
    running = outcomes["stop_reason"] == RUNNING
    with np.errstate(invalid="ignore", divide="ignore"):  # stopped points hold NaN -> constant rows, ignored below
        detected = diagnostics.detect_equilibration(da.fillna(0.0), method="binary")
    t0 = detected.t0.values  # index into steps, per member
    if rule.per == "member":
        done = running & (detected.n_eff.values >= rule.min_ess)
        mark(outcomes, done, EQUILIBRATED, now, steps[t0])
        return
    point_start = t0.max(axis=0)  # per parameter point, the latest start among its members
    for point in np.ndindex(point_start.shape):
        cells = (slice(None), *point)
        if not running[cells].all():
            continue
        window = da[(slice(int(point_start[point]), None), *cells)]
        if window.sizes["step"] < 8:
            continue
        r = float(diagnostics.rhat(window, chain_dim=dims[0]))
        n = float(diagnostics.ess(window, chain_dim=dims[0], method="bulk"))
        if r < rule.rhat and n >= rule.min_ess:
            hit = np.zeros(running.shape, bool)
            hit[cells] = True
            mark(outcomes, hit, EQUILIBRATED, now, steps[int(point_start[point])])
