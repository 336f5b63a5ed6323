"""Stop rules: each ensemble member's outcome is data, never an exception.

``eq.run(..., stop=eq.stop.converged("residual", 1e-8))``, ``stop=eq.stop.equilibrated("energy")``
or ``stop=eq.stop.cycled("action")``. Every member ends with a ``stop_reason`` (see
:mod:`eqflow.outcomes`: converged, equilibrated, diverged, max_steps, cycled), the step it stopped at
(``stopped_at``) and where its equilibrium window starts (``equilibrated_at``). A stopped member's state is frozen;
a chunk whose members have all stopped does no more work; ``steps`` stays the hard limit.
A state that becomes NaN or infinite stops that member as ``diverged``, with or without rules.

The protocol
------------
A stop rule is any object with these attributes (subclassing :class:`Rule` gives the defaults):

- ``name`` (str): the name the rule is recorded under (the store's ``eqflow_stop``, which a
  resume must match) and, once :func:`register`-ed, the name a run file's ``[run] stop`` uses.
- ``var`` (str): what it reads: an observable, a state variable, the operator's owned state or
  one of the operator's diagnostics (``Operator`` ``diagnostics``: a value the update computes
  anyway, so reading it costs nothing). Within a step each observable is evaluated at most once,
  shared by every rule and the records.
- ``outcome`` (str): the outcome of the members it stops, one of ``converged``,
  ``equilibrated``, ``cycled`` (:mod:`eqflow.outcomes`); a converged or equilibrated member's
  equilibrium window starts at the step it stopped at, unless the rule sets
  ``window_at_stop = False``.
- ``where``: ``"task"`` or ``"client"``.
- ``arguments()`` -> dict: its JSON-able arguments (with ``name``, its identity for a resume).
- ``validate(contract, operator)`` -> list of problems (optional): the default accepts any
  variable named above; the built-ins narrow it (a scalar observable for converged).

A ``"task"`` rule runs inside each dask task, after every step, on the backend's raw arrays of
its chunk (NumPy or torch: use :func:`eqflow.backends.namespace`):

- ``check(value, state)`` -> ``(hit, changed)``: ``value`` (*E, *own dims) is ``var`` after the
  step, ``state`` the chunk's arrays by name (the system's state, the operator's owned state
  and the rules' own arrays, below); ``hit`` is a boolean (*E) array of the members that stop
  now (only running members are marked), ``changed`` {name: array} the rule's own arrays it
  updated (empty if none).
- ``initial_state(value, ensemble_ndim)`` -> {name: (own dims, NumPy array (*E, *own))}
  (optional): the arrays the rule keeps from step to step, from ``var``'s value at the run's
  first step (None for a diagnostic). They are checkpointed with the state at every segment,
  so a killed and resumed run decides as an uninterrupted one; names must not clash with the
  state's.

A ``"client"`` rule runs on the client at segment boundaries, on the records already written:

- ``reporter(run)`` -> a reporter (:mod:`eqflow.reporting`) whose ``report(segment)`` calls
  ``segment.stop(...)``; its ``next_report`` ends segments where it wants to look. It keeps no
  checkpointed state: it reads back what it needs from the store, whose records are final once
  their segment is committed, so a resumed run decides as an uninterrupted one.

Rules are registered by name (:func:`register`, or the ``eqflow.stop_rules`` entry-point
group, ``name = "package.module:factory"``) so that a run file can name them:
``stop = [{rule = "converged", var = "residual", tol = 1e-8}]``. A rule defined in a user's
script works in ``eq.run`` without registration (it must pickle for a distributed cluster:
define it at module level).

>>> import eqflow as eq
>>> class Below(eq.stop.Rule):
...     name, outcome = "below", "converged"
...     def __init__(self, var, level):
...         self.var, self.level = var, level
...     def arguments(self):
...         return {"var": self.var, "level": self.level}
...     def check(self, value, state):
...         return value < self.level, {}
>>> hist = eq.run(eq.create("ising", size=4, temperature=1.0, members=2, seed=1), "metropolis", steps=20,
...               store=None, stop=Below("energy", -1.9), progress=False)
>>> sorted(set(hist.stop_reason.values.ravel().tolist()))
['converged']
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, is_dataclass
from importlib.metadata import entry_points

import numpy as np
import xarray as xr

from .outcomes import CONVERGED, CYCLED, EQUILIBRATED, NAMES, RUNNING, mark

ENTRY_POINT_GROUP = "eqflow.stop_rules"
OUTCOMES = {NAMES[c]: c for c in (CONVERGED, EQUILIBRATED, CYCLED)}  # what a rule may stop a member as
WHERE = ("task", "client")


class Rule:
    """Defaults of the stop-rule protocol (see the module docstring); subclassing it is optional."""

    name: str = ""
    var: str  # set by the rule (a dataclass field, or in __init__)
    outcome: str = "converged"
    where: str = "task"

    def arguments(self) -> dict:
        """JSON-able arguments: a dataclass's fields, else the instance's public attributes."""
        if is_dataclass(self):
            return asdict(self)
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def validate(self, contract, operator: str) -> list[str]:
        return check_var(self, contract, operator)

    # initial_state(value, ensemble_ndim) is left out: a rule without it keeps no arrays, and its
    # variable is not evaluated at the start for it


def check_var(rule, contract, operator: str, allowed: tuple = ("observable", "state", "owned", "diagnostic"),
              scalar: bool = False) -> list[str]:
    """Problems of ``rule.var`` for ``contract`` (the kind's :class:`eqflow.System`) and ``operator``:
    it must be one of the ``allowed`` sorts of variable (and a scalar observable if ``scalar``)."""
    spec = contract.schema.operators.get(operator)
    sorts = {"observable": list(contract.observables), "state": list(contract.schema.variables),
             "owned": list(spec.state) if spec is not None else [],
             "diagnostic": list(spec.diagnostics) if spec is not None else []}
    names = [n for sort in allowed for n in sorts[sort]]
    words = {"observable": "an observable", "state": "state variable", "owned": "owned state",
             "diagnostic": "diagnostic"}
    what = " or ".join([words[a] for a in allowed][:1] + [words[a] for a in allowed][1:])
    if rule.var not in names:
        return [f"stop rule variable: expected {what} among {sorted(names)}, got {rule.var!r}"]
    if scalar and contract.schema.observables[rule.var].dims:
        dims = list(contract.schema.observables[rule.var].dims)
        return [f"stop rule variable: {rule.var!r} has dims {dims}; expected a scalar observable "
                f"(one value per member)"]
    return []

DETECT_THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
# threads of the exhaustive test's t0 detection (see _detect): the usable cores, at most 4


@dataclass(frozen=True)
class Converged(Rule):
    """Stop a member when ``|var| < tol`` (evaluated after every step, inside the task)."""

    var: str
    tol: float
    name = "converged"
    outcome = "converged"

    def reached(self, value: np.ndarray) -> np.ndarray:
        return np.abs(value) < self.tol

    def validate(self, contract, operator: str) -> list[str]:
        return check_var(self, contract, operator, ("observable",), scalar=True)

    def check(self, value, state: dict):
        from .backends import namespace

        return namespace(value).abs(value) < self.tol, {}


@dataclass(frozen=True)
class Equilibrated(Rule):
    """Stop when ``var`` is equilibrated (checked every ``check_every`` steps, on the client).

    per="point": at a parameter point, every member's equilibration start t0 is detected
    (Chodera 2016); on the window after the latest t0, the rank-normalized split R-hat across
    members must be below ``rhat`` and the bulk ESS at least ``min_ess``. per="member": a
    member stops when its own effective sample size after t0 reaches ``min_ess``. A run evaluates
    it through :class:`Monitor`: a linear-time screen, then this exhaustive test where the screen
    passes, so a member stops at the same check as with the exhaustive test alone or later, never
    earlier (on the Ising examples measured: at the same check). Past the run's 64th check the
    test runs on a geometric grid of checks (:func:`scheduled`), which bounds its total work; the
    run's segments end only at the checks the rule evaluates.

    overlap=False (the default): the run waits for each check, and a member stops at the check
    that finds it equilibrated. overlap=True: the check of the records up to step s runs on the
    client while the workers compute the next ``check_every`` steps, and what it decides applies
    at the next check, s + ``check_every``: the members it stops run (and are recorded) one check
    longer, and their ``stopped_at`` is that next check (their ``equilibrated_at`` is unchanged);
    a check at the run's last step decides there. It pays where the client has cores the workers
    do not use (a dask.distributed cluster); on one busy machine the check competes with the run
    for the same cores (RESULTS.md: the same wall time on 2 cores). Either way a resumed run
    stops where an uninterrupted one does.
    """

    var: str
    rhat: float = 1.01
    min_ess: float = 400.0
    check_every: int = 200
    min_steps: int = 100
    per: str = "point"
    overlap: bool = False
    name = "equilibrated"
    outcome = "equilibrated"
    where = "client"

    def validate(self, contract, operator: str) -> list[str]:
        return check_var(self, contract, operator, ("observable",), scalar=True)

    def reporter(self, run) -> _EquilibratedReporter:
        return _EquilibratedReporter(self, Monitor(self, run.dims))  # Monitor looked up now: tests may swap it


class _EquilibratedReporter:
    """Evaluates an :class:`Equilibrated` rule every ``check_every`` steps through its :class:`Monitor`;
    with ``overlap``, on a thread while the next segment runs (see :class:`Equilibrated`)."""

    def __init__(self, rule: Equilibrated, monitor):
        self.rule, self.monitor = rule, monitor
        self.reads = (rule.var,)
        self.plan, self.store = None, None
        self.pending = None  # (future -> the outcomes as the check left them, the outcomes it started from)
        self.pool = None

    def begin(self, run) -> None:
        self.plan, self.store = run.plan, run.store
        every, position = self.rule.check_every, run.position
        last_check = position - position % every
        if self.rule.overlap and run.plan.first < last_check and position < run.plan.last:
            # resumed after a check whose decision was still pending: the uninterrupted run
            # started that check with the outcomes as they were then (members stopped since by
            # a task rule were running), and applies it at the next check
            found = {k: np.array(v) for k, v in run.store.outcomes().items()}
            found["stop_reason"][found["stopped_at"] > last_check] = RUNNING
            self._start(found, last_check)

    def next_report(self, step: int) -> int:
        """The next check that :func:`scheduled` names (every one of the first 64, then a geometric
        grid): the run's segments end only where the rule looks. A pending (overlapped) decision
        lands at the next check, or by the last step."""
        every = self.rule.check_every
        check = step // every + 1
        if self.pending is not None:
            following = check * every
            return min(following, self.plan.last) if self.plan is not None else following
        while not scheduled(check):
            check += 1
        return check * every

    def report(self, segment) -> None:
        self._apply(segment)
        every = self.rule.check_every
        at_check = segment.end % every == 0 and scheduled(segment.end // every)
        if not at_check or not segment.running().any():
            return
        if not self.rule.overlap or segment.end >= segment.run.plan.last:  # nothing follows: decide now
            self._check(segment.outcomes, segment.end)()
            return
        self._start({k: np.array(v) for k, v in segment.outcomes.items()}, segment.end)

    def end(self, run) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool, self.pending = None, None

    def _check(self, found: dict, now: int):
        """The check of the records up to ``now`` as a call that applies it to the outcomes ``found``
        (in place) and returns them: run at once, or on the pool while the next segment runs."""
        steps, values = self.monitor.records(self.store, self.rule.var, self.plan, now)

        def check():
            self.monitor.evaluate(found, values, steps, now)
            return found

        return check

    def _start(self, found: dict, now: int) -> None:
        """The check up to ``now`` on a thread, from the outcomes ``found`` (a copy), pending until
        the next report applies it."""
        from concurrent.futures import ThreadPoolExecutor

        before = found["stop_reason"].copy()  # before the check can change it
        if self.pool is None:
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="eqflow-equilibrated")
        self.pending = (self.pool.submit(self._check(found, now)), before)

    def _apply(self, segment) -> None:
        """Stop, at this segment's end, the members the pending check found equilibrated."""
        if self.pending is None:
            return
        future, before = self.pending
        self.pending = None
        decided = future.result()
        hit = (decided["stop_reason"] == EQUILIBRATED) & (before == RUNNING)
        if hit.any():
            mark(segment.outcomes, hit, EQUILIBRATED, segment.end, decided["equilibrated_at"])


@dataclass(frozen=True)
class Cycled(Rule):
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
    name = "cycled"
    outcome = "cycled"

    @property
    def buffer_name(self) -> str:
        return f"cycle_buffer_{self.var}"

    def validate(self, contract, operator: str) -> list[str]:
        return check_var(self, contract, operator, ("observable", "state"))

    def initial_state(self, value, ensemble_ndim: int) -> dict:
        return {self.buffer_name: (("cycle_lag", f"{self.buffer_name}_values"),
                                   self.new_buffer(np.asarray(value), ensemble_ndim))}

    def new_buffer(self, value: np.ndarray, ensemble_ndim: int) -> np.ndarray:
        """History of the start ``value`` (*E, *own): float64 (*E, period, prod(own)), NaN before it."""
        shape = value.shape[:ensemble_ndim]
        buffer = np.full((*shape, self.period, int(np.prod(value.shape[ensemble_ndim:], dtype=np.int64))), np.nan)
        buffer[..., -1, :] = value.reshape((*shape, -1))
        return buffer

    def check(self, value, state: dict):
        """(cycled, {buffer: new buffer}): ``value`` (*E, *own) against the buffer (*E, period, K), newest last."""
        from .backends import namespace

        buffer = state[self.buffer_name]
        xp = namespace(buffer)
        ensemble = buffer.shape[:-2]
        current = xp.reshape(xp.astype(value, buffer.dtype), (*ensemble, 1, buffer.shape[-1]))
        gap = xp.max(xp.abs(buffer - current), axis=-1)  # (*E, period); NaN where not yet filled
        same = gap <= self.tol
        return (xp.any(same[..., :-1], axis=-1) & ~same[..., -1],
                {self.buffer_name: xp.concat([buffer[..., 1:, :], current], axis=-2)})


def _real(value) -> bool:
    """A finite real number (NaN passes no bound: ``not nan > 0`` is True, ``nan >= 0`` False)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)) \
        and bool(np.isfinite(value))


def _count(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_var(var, problems: list) -> None:
    if not isinstance(var, str) or not var:
        problems.append(f"var: expected the name of a recorded variable (a str), got {type(var).__name__} {var!r}")


def _raise(problems: list) -> None:
    if problems:
        raise ValueError("; ".join(problems))


def cycled(var: str, period: int = 2, tol: float = 0.0) -> Cycled:
    """Rule for iterations that can end in a limit cycle (best response, plain SCF); see :class:`Cycled`."""
    problems = []
    _check_var(var, problems)
    if not (_count(period) and 2 <= period <= 2**20):
        problems.append(f"period: expected an integer >= 2, at most 2**20 (the longest cycle looked for), "
                        f"got {period!r}")
    if not (_real(tol) and tol >= 0):
        problems.append(f"tol: expected a finite tolerance >= 0, got {tol!r}")
    _raise(problems)
    return Cycled(var, int(period), float(tol))


def converged(var: str, tol: float) -> Converged:
    """Rule for deterministic iterations: stop each member once ``|var| < tol``."""
    problems = []
    _check_var(var, problems)
    if not (_real(tol) and tol > 0):
        problems.append(f"tol: expected a positive tolerance, got {tol!r} (a finite number is needed)")
    _raise(problems)
    return Converged(var, float(tol))


def equilibrated(var: str, *, rhat: float = 1.01, min_ess: float = 400.0, check_every: int = 200,
                 min_steps: int = 100, per: str = "point", overlap: bool = False) -> Equilibrated:
    """Rule for stochastic runs; see :class:`Equilibrated`."""
    problems = []
    _check_var(var, problems)
    if per not in ("point", "member"):
        problems.append(f"per: expected 'point' or 'member', got {per!r}")
    if not (_count(check_every) and 0 < check_every < 2**62):
        problems.append(f"check_every: expected a positive integer number of steps, got {check_every!r}")
    if not (_count(min_steps) and 0 <= min_steps < 2**62):
        problems.append(f"min_steps: expected an integer number of steps >= 0, got {min_steps!r}")
    if not (_real(rhat) and rhat > 1):
        problems.append(f"rhat: expected a finite threshold > 1, got {rhat!r}")
    if not (_real(min_ess) and min_ess > 0):
        problems.append(f"min_ess: expected a finite effective sample size > 0, got {min_ess!r}")
    if not isinstance(overlap, (bool, np.bool_)):
        problems.append(f"overlap: expected True or False, got {type(overlap).__name__} {overlap!r}")
    _raise(problems)
    return Equilibrated(var, float(rhat), float(min_ess), int(check_every), int(min_steps), per, bool(overlap))


_REGISTERED: dict = {"converged": converged, "equilibrated": equilibrated, "cycled": cycled}


def register(name: str, factory=None):
    """Register ``factory`` (a rule class or a function returning a rule) as ``name``, for this process.

    A run file's ``stop = [{rule = name, ...}]`` then calls ``factory(**the other keys)``. Usable
    as a decorator: ``@eq.stop.register("below")`` over the class. Packages register theirs in the
    ``eqflow.stop_rules`` entry-point group instead. Returns ``factory``.
    """
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"name: expected an identifier for the rule, got {name!r}")
    if factory is None:
        return lambda f: register(name, f)
    if not callable(factory):
        raise TypeError(f"factory: expected a rule class or a function returning a rule, got {factory!r}")
    _REGISTERED[name] = factory
    return factory


def _entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    """Every registered rule name (built-in, :func:`register`-ed, and the entry-point group's)."""
    return sorted({*_REGISTERED, *_entry_points()})


def make(name: str, **arguments):
    """The rule registered as ``name``, built with ``arguments`` (what a run file's table gives)."""
    if name not in _REGISTERED:
        found = _entry_points().get(name)
        if found is None:
            raise KeyError(f"rule: expected one of {names()}, got {name!r}")
        _REGISTERED[name] = found.load()
    return _REGISTERED[name](**arguments)


def as_rules(stop) -> tuple:
    """``stop`` (None, a rule or a list of rules) as a tuple of rules; a TypeError names what is not one."""
    if stop is None:
        return ()
    rules = tuple(stop) if isinstance(stop, (list, tuple)) else (stop,)
    for rule in rules:
        problem = _not_a_rule(rule)
        if problem:
            raise TypeError(f"stop: expected eq.stop.converged(...), eq.stop.equilibrated(...), eq.stop.cycled(...) "
                            f"or a rule of the eq.stop protocol, got {rule!r} ({problem})")
    return rules


def _not_a_rule(rule) -> str:
    if isinstance(rule, (str, bytes, dict)) or not isinstance(getattr(rule, "var", None), str):
        return "no attribute var naming what it reads"
    where = getattr(rule, "where", "task")
    if where not in WHERE:
        return f"where: expected one of {list(WHERE)}, got {where!r}"
    if getattr(rule, "outcome", None) not in OUTCOMES:
        return f"outcome: expected one of {list(OUTCOMES)}, got {getattr(rule, 'outcome', None)!r}"
    needs = ("check",) if where == "task" else ("reporter",)
    missing = [m for m in needs if not callable(getattr(rule, m, None))]
    return f"no method {missing[0]}" if missing else ""


def arguments(rule) -> dict:
    """A rule's identity as the store records it: {"rule": name, **arguments}."""
    args = rule.arguments() if callable(getattr(rule, "arguments", None)) else Rule.arguments(rule)
    name = getattr(rule, "name", "") or type(rule).__name__.lower()
    return {"rule": name, **args}


def text(rules) -> str:
    """The stop rules as JSON (the store's ``eqflow_stop``; a resume must ask for the same ones)."""
    return json.dumps([arguments(r) for r in rules])


def in_task(rules) -> tuple:
    return tuple(r for r in rules if getattr(r, "where", "task") == "task")


def initial_state(rule, value, ensemble_ndim: int) -> dict:
    """{name: (own dims, array)} a task rule keeps (empty for a rule without ``initial_state``)."""
    make_state = getattr(rule, "initial_state", None)
    return dict(make_state(value, ensemble_ndim)) if callable(make_state) else {}


def window_start(rule):
    """Whether a member this rule stops has its equilibrium window from its stop step."""
    return getattr(rule, "window_at_stop", rule.outcome in ("converged", "equilibrated"))


def evaluate_equilibrated(rule: Equilibrated, outcomes: dict, history: np.ndarray, steps: np.ndarray, now: int,
                          dims: list[str], only=None) -> None:
    """Apply an equilibrated rule at step ``now`` to the running members: the exhaustive test.

    history : records of ``rule.var`` at ``steps``, shape (len(steps), *ensemble shape).
    only : optional bool mask over the parameter points (ensemble shape without ``dims[0]``);
        points outside it are not tested. Each check re-detects t0 over the whole history (per
        point only its latest member's, which starts the window), so a run that calls this every
        ``check_every`` steps costs O(T^2) overall; :class:`Monitor` screens first and calls this
        only where the screen passes.
    """

    if len(steps) < max(rule.min_steps, 8):
        return
    running = outcomes["stop_reason"] == RUNNING
    if only is not None:
        running = running & np.broadcast_to(only, running.shape)
    tested = running if rule.per == "member" else np.broadcast_to(running.all(axis=0), running.shape)
    if not tested.any():
        return
    if rule.per == "member":
        found_t0, n_eff = _detect(history[:, tested])
        t0 = np.zeros(running.shape, int)
        t0[tested] = found_t0  # index into steps, per member
        done = np.zeros(running.shape, bool)
        done[tested] = n_eff >= rule.min_ess
        mark(outcomes, done, EQUILIBRATED, now, steps[t0])
        return
    # per point: only each point's latest t0 (its window's start) is needed
    point_of = np.arange(tested[0].size).reshape(tested.shape[1:])
    latest = _latest(history[:, tested], np.broadcast_to(point_of, tested.shape)[tested], tested[0].size)
    for point in _points(tested[0]):
        _test_point(rule, outcomes, history, steps, now, point, int(latest[point_of[point]]))


def _points(mask: np.ndarray):
    """Index tuples of the True cells of ``mask``, () for a 0-d True (an ensemble without sweeps)."""
    return [index for index in np.ndindex(mask.shape) if mask[index]]


def _detect(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """t0 and N_eff of each column of ``rows`` (steps, members), pymbar's binary search, on up to
    ``DETECT_THREADS`` threads (:func:`_by_columns`)."""
    from . import diagnostics

    def detect(cols):
        with np.errstate(invalid="ignore", divide="ignore"):  # rows are members that run: no NaN
            found = diagnostics.detect_equilibration(xr.DataArray(rows[:, cols], dims=["step", "row"]),
                                                     method="binary")
        return found.t0.values, found.n_eff.values

    found = _by_columns(rows, detect)
    return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


def _latest(rows: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Each group's latest t0 (:func:`eqflow.diagnostics.latest_equilibration`) of the columns of
    ``rows`` (steps, members), on up to ``DETECT_THREADS`` threads (:func:`_by_columns`)."""
    from . import diagnostics

    def latest(cols):
        found = np.full(n_groups, -1)
        part = diagnostics.latest_equilibration(rows[:, cols].T, groups[cols])
        found[: part.size] = part
        return found

    return np.maximum.reduce(_by_columns(rows, latest))


def _by_columns(rows: np.ndarray, work) -> list:
    """``work(columns)`` for parts of the columns of ``rows``, on up to ``DETECT_THREADS`` threads,
    in column order (members are independent, so the answers do not depend on the split; the
    check runs between segments, when the run's own workers wait)."""
    from concurrent.futures import ThreadPoolExecutor

    parts = np.array_split(np.arange(rows.shape[1]), max(1, min(DETECT_THREADS, rows.shape[1] // 8)))
    if len(parts) == 1:
        return [work(parts[0])]
    with ThreadPoolExecutor(len(parts)) as pool:
        return list(pool.map(work, parts))


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
    (the run's workers wait during a check) and, per point, searches only as far as the point's
    latest t0 needs (:func:`eqflow.diagnostics.latest_equilibration`: the window's start, exactly);
    R-hat and ESS share one rank normalization and stop at the first failed criterion
    (:func:`eqflow.diagnostics.mixed`): the same answers.
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
