"""Stop rules: each ensemble member's outcome is data, never an exception.

``eq.run(..., stop=eq.stop.converged("residual", 1e-8))``, ``stop=eq.stop.equilibrated("energy")``
or ``stop=eq.stop.cycled("action")``. Every member ends with a ``stop_reason`` (see
:mod:`eqflow.outcomes`: converged, equilibrated, diverged, max_steps, cycled), the step it stopped at
(``stopped_at``) and where its equilibrium window starts (``equilibrated_at``). A stopped member's state is frozen;
a chunk whose members have all stopped does no more work; ``steps`` stays the hard limit.
A state that becomes NaN or infinite stops that member as ``diverged``, with or without rules.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import xarray as xr

from .outcomes import EQUILIBRATED, RUNNING, mark

DETECT_THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
# threads of the exhaustive test's t0 detection (see _detect): the usable cores, at most 4


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
    member stops when its own effective sample size after t0 reaches ``min_ess``. A run evaluates
    it through :class:`Monitor`: a linear-time screen, then this exhaustive test where the screen
    passes, so a member stops at the same check as with the exhaustive test alone or later, never
    earlier (on the Ising examples measured: at the same check). Past the run's 64th check the
    test runs on a geometric grid of checks (:func:`scheduled`), which bounds its total work.
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
                          dims: list[str], only=None) -> None:
    """Apply an equilibrated rule at step ``now`` to the running members: the exhaustive test.

    history : records of ``rule.var`` at ``steps``, shape (len(steps), *ensemble shape).
    only : optional bool mask over the parameter points (ensemble shape without ``dims[0]``);
        points outside it are not tested. Each check re-detects t0 over the whole history, so a run
        that calls this every ``check_every`` steps costs O(T^2) overall; :class:`Monitor` screens
        first and calls this only where the screen passes.
    """

    if len(steps) < max(rule.min_steps, 8):
        return
    running = outcomes["stop_reason"] == RUNNING
    if only is not None:
        running = running & np.broadcast_to(only, running.shape)
    tested = running if rule.per == "member" else np.broadcast_to(running.all(axis=0), running.shape)
    if not tested.any():
        return
    found_t0, n_eff = _detect(history[:, tested])
    t0 = np.zeros(running.shape, int)
    t0[tested] = found_t0  # index into steps, per member
    if rule.per == "member":
        done = np.zeros(running.shape, bool)
        done[tested] = n_eff >= rule.min_ess
        mark(outcomes, done, EQUILIBRATED, now, steps[t0])
        return
    for point in _points(tested[0]):
        _test_point(rule, outcomes, history, steps, now, point, int(t0[(slice(None), *point)].max()))


def _points(mask: np.ndarray):
    """Index tuples of the True cells of ``mask``, () for a 0-d True (an ensemble without sweeps)."""
    return [index for index in np.ndindex(mask.shape) if mask[index]]


def _detect(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """t0 and N_eff of each column of ``rows`` (steps, members), pymbar's binary search, on up to
    ``DETECT_THREADS`` threads (the members are independent, so the answer does not depend on
    how they are split; the check runs between segments, when the run's own workers wait)."""
    from concurrent.futures import ThreadPoolExecutor

    from . import diagnostics

    def detect(part):
        with np.errstate(invalid="ignore", divide="ignore"):  # rows are members that run: no NaN
            found = diagnostics.detect_equilibration(xr.DataArray(part, dims=["step", "row"]), method="binary")
        return found.t0.values, found.n_eff.values

    parts = np.array_split(np.arange(rows.shape[1]), max(1, min(DETECT_THREADS, rows.shape[1] // 8)))
    if len(parts) == 1:
        return detect(rows)
    with ThreadPoolExecutor(len(parts)) as pool:
        found = list(pool.map(lambda cols: detect(rows[:, cols]), parts))
    return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


def _test_point(rule: Equilibrated, outcomes: dict, history, steps, now: int, point: tuple, start: int) -> None:
    """R-hat below ``rule.rhat`` and bulk ESS >= ``rule.min_ess`` on the window from ``start`` (an index)."""
    from . import diagnostics

    cells = (slice(None), *point)
    if not (outcomes["stop_reason"][cells] == RUNNING).all() or len(steps) - start < 8:
        return
    window = xr.DataArray(history[(slice(start, None), *cells)], dims=["step", "member"])
    if diagnostics.mixed(window, rule.rhat, rule.min_ess):  # rhat(window) < rule.rhat and bulk ESS >= min_ess
        hit = np.zeros(outcomes["stop_reason"].shape, bool)
        hit[cells] = True
        mark(outcomes, hit, EQUILIBRATED, now, steps[start])


SCREEN_DRAWS = 512  # records per member that the screen looks at (a stride over longer windows)
SCREEN_FIRST = 256  # the screen re-detects t0 on the first 256, 512, 1024, ... records


DENSE_CHECKS = 64  # the exhaustive test may run at each of a run's first 64 checks ...
GROWTH = (9, 8)  # ... then at the checks ceil(64 (9/8)^j), j = 1, 2, ...: 72, 81, 92, 103, 116, ...


def scheduled(check: int) -> bool:
    """Whether the ``check``-th check (``now // check_every``) may run the screen and the exhaustive test.

    Every check up to ``DENSE_CHECKS``, then only the checks ceil(DENSE_CHECKS (9/8)^j), in integer
    arithmetic (the same on every machine, and a function of the step alone, so a resumed run
    checks where an uninterrupted one does).

    Bounded work: an exhaustive test over T records costs c(T) = O(members x T log T) (t0 by
    binary search, ~50 FFTs per member, then R-hat and ESS on the window), with c(T) / T
    non-decreasing. Over a run whose last scheduled check is g_J, with T records (records are
    proportional to checks), the dense checks cost at most 64 c(T) and the sparse ones
    sum_j c(T_j) <= c(T) sum_j g_j / g_J, where 64 (9/8)^j <= g_j < 64 (9/8)^j + 1, so the sum is
    below 9 + (J + 1) / g_J <= 10: all tests together cost at most 74 tests at the run's end,
    whatever its length and however long a point hovers at the thresholds. The price: a point whose
    exhaustive answer comes after the 64th check stops at the next scheduled check, up to 1/8 of
    the run later (never earlier).
    """
    if check <= DENSE_CHECKS:
        return True
    grow, by = GROWTH
    j, point = 0, DENSE_CHECKS
    while point < check:
        j += 1
        point = -(-DENSE_CHECKS * grow**j // by**j)
    return point == check


class Monitor:
    """An equilibrated rule over one run, in time linear in the run length: screen, then the exhaustive test.

    At a check with T records the screen takes, per member, the t0 detected on the first P records,
    P = 256 x 2^j the largest such P <= T (re-detected only when T doubles, on at most
    ``SCREEN_DRAWS`` records taken at a stride), and on the window after the point's latest t0,
    thinned to at most ``SCREEN_DRAWS`` records per member, the R-hat and bulk ESS. Where the screen
    passes with a margin (R-hat < 1 + 2 (rhat - 1) and ESS >= min_ess / 2; per member: the
    detected N_eff, scaled to T records, >= min_ess / 2) the point (member) gets the exhaustive
    test of :func:`evaluate_equilibrated`, whose answer decides. So a stop is never earlier than the
    exhaustive rule checked every ``check_every`` steps, and it is later only if the screen misses by
    more than its margin at the exhaustive stop (not seen on the Ising examples of the tests and of
    ``benchmarks/bench_diagnostics.py``). The screen's state is a function of T only, so a resumed
    run decides as an uninterrupted one. Cost per check: O(members x SCREEN_DRAWS) plus the
    exhaustive tests where the screen passes, instead of the exhaustive O(T) every check.

    Screen and test run only at the checks that :func:`scheduled` names (every one of the first
    ``DENSE_CHECKS`` = 64, then a geometric grid), so that the exhaustive tests of a whole run cost
    at most as much as 74 tests at its end, even where a point hovers at the thresholds and the
    screen passes at every check. The test's t0 detection runs on up to ``DETECT_THREADS`` threads
    (the run's workers wait during a check), and R-hat and ESS share one rank normalization and
    stop at the first failed criterion (:func:`eqflow.diagnostics.mixed`): the same answers.
    """

    def __init__(self, rule: Equilibrated, dims: list[str]):
        self.rule, self.dims = rule, list(dims)
        self._screen = None  # (P, t0 index, g, detected mask) per member, of the last screen detection
        self._rows, self._count = None, 0  # the records read so far (see ``records``)

    def records(self, store, var: str, plan, last: int) -> tuple[np.ndarray, np.ndarray]:
        """Steps and values of ``var`` up to step ``last``, reading only the rows not read before.

        ``store``: the run's :class:`eqflow.HistoryStore`; earlier rows are final once
        their segment is marked, so they are kept here (a buffer that doubles) instead of being read
        back at every check, which alone would cost O(T) per check.
        """
        steps = plan.steps(var)
        steps = steps[steps <= last]
        have = 0 if self._rows is None else self._count
        if len(steps) > have:
            _, new = store.records(var, plan, last, first=have)
            if self._rows is None or len(steps) > len(self._rows):
                grown = np.empty((max(2 * len(steps), 1024), *new.shape[1:]), dtype=new.dtype)
                if self._rows is not None:
                    grown[:have] = self._rows[:have]
                self._rows = grown
            self._rows[have: len(steps)] = new
            self._count = len(steps)
        return steps, self._rows[: len(steps)]

    def evaluate(self, outcomes: dict, history: np.ndarray, steps: np.ndarray, now: int) -> None:
        """The rule at step ``now``; ``history``, ``steps`` as for :func:`evaluate_equilibrated`."""
        rule, T = self.rule, len(steps)
        if T < max(rule.min_steps, 8) or not scheduled(now // rule.check_every):
            return
        running = outcomes["stop_reason"] == RUNNING
        if not running.any():
            return
        t0, g = self._detected(history, T, running)
        if rule.per == "member":
            n_eff = (T - t0 + 1) / g  # today's N_eff if t0 and g held on
            evaluate_equilibrated(rule, outcomes, history, steps, now, self.dims, only=n_eff >= rule.min_ess / 2)
            return
        passed = np.zeros(running.shape[1:], bool)
        for point in _points(running.all(axis=0)):
            start = int(t0[(slice(None), *point)].max())
            if T - start >= 8:
                passed[point] = self._screen_passes(history[(slice(start, None), slice(None), *point)])
        if passed.any():
            evaluate_equilibrated(rule, outcomes, history, steps, now, self.dims, only=passed)

    def _detected(self, history: np.ndarray, T: int, running: np.ndarray):
        """Screen t0 and g of the running members, from the first P records (thinned to <= SCREEN_DRAWS);
        t0 = 0, g = 1 for the others (never used: a stopped member stays stopped)."""
        from . import diagnostics

        P = SCREEN_FIRST * 2 ** max(0, int(np.floor(np.log2(max(T, 1) / SCREEN_FIRST))))
        P = min(P, T)
        if self._screen is None or self._screen[0] != P or (running & ~self._screen[3]).any():
            stride = -(-P // SCREEN_DRAWS)
            t0, g = np.zeros(running.shape, int), np.ones(running.shape)
            with np.errstate(invalid="ignore", divide="ignore"):  # rows are members that run: no NaN
                found = diagnostics.detect_equilibration(xr.DataArray(history[:P:stride][:, running],
                                                                      dims=["step", "row"]), method="binary")
            t0[running] = found.t0.values * stride
            g[running] = 1 + stride * (np.nan_to_num(found.g.values, nan=1.0) - 1)  # g = 1 + 2 tau, tau in records
            self._screen = (P, t0, g, running.copy())
        return self._screen[1], self._screen[2]

    def _screen_passes(self, window: np.ndarray) -> bool:
        """Thinned R-hat and bulk ESS of one point's window (steps, members), with the margins."""
        from . import diagnostics

        stride = -(-len(window) // SCREEN_DRAWS)
        thinned = xr.DataArray(window[::-1][::stride][::-1], dims=["step", "member"])
        if len(thinned) < 4 or not np.isfinite(thinned.values).all():
            return False
        if float(diagnostics.rhat(thinned)) >= 1 + 2 * (self.rule.rhat - 1):
            return False
        draws = thinned.size
        tau = draws / float(diagnostics.ess(thinned, method="bulk"))  # in thinned records
        return window.size / max(1 + stride * (tau - 1), 1e-3) >= self.rule.min_ess / 2
