"""Stop rules: each ensemble member's outcome is data, never an exception.

``eq.run(..., stop=eq.stop.converged("residual", 1e-8))`` or
``stop=eq.stop.equilibrated("energy")``. Every member ends with a ``stop_reason``
(converged, equilibrated, diverged, max_steps), the step it stopped at (``stopped_at``) and
where its equilibrium window starts (``equilibrated_at``). A stopped member's state is frozen;
a chunk whose members have all stopped does no more work; ``steps`` stays the hard limit.
A state that becomes NaN or infinite stops that member as ``diverged``, with or without rules.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

RUNNING, CONVERGED, EQUILIBRATED, DIVERGED, MAX_STEPS = range(5)
REASONS = ("running", "converged", "equilibrated", "diverged", "max_steps")
NOT_YET = -1  # stopped_at / equilibrated_at of a member that has not stopped / equilibrated


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
        if not isinstance(rule, (Converged, Equilibrated)):
            raise TypeError(f"stop: expected eq.stop.converged(...) or eq.stop.equilibrated(...), got {rule!r}")
    return rules


def new_book(shape) -> dict[str, np.ndarray]:
    """Per-member outcome arrays of an ensemble shape: reason, stopped_at, equilibrated_at."""
    return {"stop_reason": np.full(shape, RUNNING, np.int8), "stopped_at": np.full(shape, NOT_YET, np.int64),
            "equilibrated_at": np.full(shape, NOT_YET, np.int64)}


def mark(book: dict, hit: np.ndarray, reason: int, step: int, equilibrated_at=None) -> None:
    """Record that the running members in ``hit`` stopped at ``step`` for ``reason``."""
    hit = hit & (book["stop_reason"] == RUNNING)
    book["stop_reason"][hit] = reason
    book["stopped_at"][hit] = step
    if equilibrated_at is not None:
        book["equilibrated_at"][hit] = np.broadcast_to(equilibrated_at, hit.shape)[hit]


def finish(book: dict, step: int) -> None:
    mark(book, np.ones(book["stop_reason"].shape, bool), MAX_STEPS, step)


def evaluate_equilibrated(rule: Equilibrated, book: dict, history: np.ndarray, steps: np.ndarray, now: int,
                          dims: list[str]) -> None:
    """Apply an equilibrated rule at step ``now`` to the running members.

    history : records of ``rule.var`` at ``steps``, shape (len(steps), *ensemble shape).
    """
    from . import diagnostics

    if len(steps) < max(rule.min_steps, 8):
        return
    da = xr.DataArray(history, dims=["step", *dims])
    running = book["stop_reason"] == RUNNING
    with np.errstate(invalid="ignore", divide="ignore"):  # stopped points hold NaN -> constant rows, ignored below
        detected = diagnostics.detect_equilibration(da.fillna(0.0), method="binary")
    t0 = detected.t0.values  # index into steps, per member
    if rule.per == "member":
        done = running & (detected.n_eff.values >= rule.min_ess)
        mark(book, done, EQUILIBRATED, now, steps[t0])
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
            mark(book, hit, EQUILIBRATED, now, steps[int(point_start[point])])
