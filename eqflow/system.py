"""The system contract: everything a kind of system may declare, in one place.

A system is a package ``eqflow/systems/<kind>/`` (or a third-party module) exposing a
module-level :class:`System`. Its operators and observables are pure functions over raw
arrays (NumPy or torch) that take keyword arguments by name; eqflow passes each function
exactly the names it asks for, from:

- the state variables, and the operator-owned state (``Operator.init``);
- the parameters and constants, in canonical units, cast to the state's float dtype, and
  whatever ``Operator.prepare`` derived from them: once per distinct inputs per process
  (:func:`prepared`: the client and every chunk and segment of a run on a worker share it);
- ``step``: the step the state is at (an update maps step -> step + 1);
- ``sizes``: {dim: size} of the site dims, and ``backend``: "numpy" or "torch" (prepare and
  init only: a prepare that cannot serve a backend raises before anything is written);
- the operator's declared draws (:mod:`eqflow.random`), e.g. ``uniforms``;
- the operator's options (``eq.run(..., options={...})``, defaults in the schema);
- the system's string attributes (e.g. an SCF ``problem`` family).

``update`` returns the new state, its owned state and, optionally, its declared per-step
diagnostics, all in one dict. :mod:`eqflow.testing.toy` shows every feature in a small system.

Kernels. ``update`` is the reference: portable array-API code. An operator may also carry
fast variants (:class:`Kernel`, e.g. a numba loop for NumPy), each of which must give the same
history bit for bit; ``eq.run(kernel="auto")`` picks the first one available for the run's
backend, ``kernel="reference"`` the reference, ``kernel=name`` that one. A kernel's function may
be named as ``"module:function"``: its module (and numba, Triton or torch with it) is imported
on first use, so a system loads without them.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import SchemaError
from .schema import Schema, load, schema_dir

REFERENCE, AUTO = "reference", "auto"


class LazyFunction:
    """The function ``"module:function"`` names, imported on first use (a call or its signature).

    It stands in for the function wherever eqflow takes one: called, it calls it;
    ``inspect.signature`` gives its signature; other attributes are the function's.
    """

    def __init__(self, target: str):
        module, _, name = target.partition(":") if isinstance(target, str) else ("", "", "")
        if not module or not name or not all(p.isidentifier() for p in (*module.split("."), *name.split("."))):
            raise ValueError(f"update: expected a callable or a 'module:function' name, got {target!r}")
        self.target = target
        self.__module__, self.__qualname__, self.__name__ = module, name, name.rpartition(".")[2]
        self._function = None

    def resolve(self) -> Callable:
        """The function itself (its module imported now, once)."""
        if self._function is None:
            module, _, name = self.target.partition(":")
            value = importlib.import_module(module)
            for part in name.split("."):
                if not hasattr(value, part):
                    raise AttributeError(f"kernel {self.target!r}: {module} has no attribute {name!r}")
                value = getattr(value, part)
            if not callable(value):
                raise TypeError(f"kernel {self.target!r}: expected a function, got {type(value).__name__}")
            self._function = value
        return self._function

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.resolve())

    def __getattr__(self, name):  # only for attributes not set above: the function's own
        if name.startswith("_") and name not in ("__doc__", "__wrapped__", "__defaults__", "__kwdefaults__"):
            raise AttributeError(name)
        return getattr(self.resolve(), name)

    def __eq__(self, other):
        return isinstance(other, LazyFunction) and other.target == self.target

    def __hash__(self):
        return hash(self.target)

    def __reduce__(self):
        return LazyFunction, (self.target,)

    def __repr__(self):
        return f"LazyFunction({self.target!r})"


@dataclass(frozen=True)
class Kernel:
    """A fast variant of an operator's ``update``; it must reproduce the reference bit for bit.

    update : called like ``Operator.update`` (the names it asks for, from the same inputs), and
        returns the same dict; a callable or its name ``"module:function"`` (:class:`LazyFunction`:
        imported on first use, so that numba, Triton or torch load only when the kernel runs).
        With ``inline_draws`` it receives, instead of the operator's declared draws, ``keys``
        (the cells' Philox keys, int64 (2, *ensemble), see :func:`eqflow.random.cell_keys`) and
        ``slots`` ({draw name: slot}), and must make each draw exactly as
        ``eqflow.random.generate(draw, keys, step=step, slot=slots[name])`` does (typically with
        :mod:`eqflow.random.numba_philox` or :mod:`eqflow.random.triton_philox` inlined, only where
        a value is used).
    backends : the backends it serves ("numpy", "torch").
    devices : the devices it serves (e.g. ("cuda",)); None: any device of its backends.
    requires : modules it imports (e.g. ("numba",)): it is unavailable where one is missing.
    install : what ``pip install`` brings ``requires`` (an extra such as "eqflow-ensembles[gpu]"); default their names.
    auto_devices : the devices on which ``kernel="auto"`` picks it; None: every device it serves.
        On the others it runs only when asked for by name (e.g. a GPU kernel that also runs,
        slowly, in an interpreter on the CPU).
    """

    update: Callable[..., dict] | str
    backends: tuple = ("numpy",)
    devices: tuple | None = None
    requires: tuple = ()
    inline_draws: bool = False
    auto_devices: tuple | None = None
    install: str | None = None  # what to pip install for ``requires`` (e.g. "eqflow-ensembles[gpu]")

    def __post_init__(self):
        if isinstance(self.update, str):
            object.__setattr__(self, "update", LazyFunction(self.update))
        elif not callable(self.update):
            raise TypeError(f"update: expected a callable or a 'module:function' name, "
                            f"got {type(self.update).__name__}")

    def unavailable(self, backend: str, device: str | None) -> str | None:
        """Why it cannot run on ``backend``/``device`` here, or None when it can."""
        if backend not in self.backends:
            return f"serves backends {list(self.backends)}, not {backend!r}"
        if self.devices is not None and (device or "cpu").split(":")[0] not in self.devices:
            return f"serves devices {list(self.devices)}, not {device or 'cpu'!r}"
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            return f"needs {missing}, which is not installed (pip install {self.install or ' '.join(missing)})"
        return None


@dataclass(frozen=True)
class Operator:
    """An update rule and what it declares.

    update : ``update(*, <names>) -> {name: new array}``: state variables, owned state and
        diagnostics; a pure function over raw arrays.
    prepare : ``prepare(*, <parameters, constants, sizes, attributes, options>) -> {name: value}``,
        NumPy, once per run and process (:func:`prepared`): derived inputs (tables, decompositions).
        A value is an array, or one object for a composite (e.g. SCF's Fock builder): such an
        object reaches a torch run through its ``on_backend(convert)`` method, which returns a
        copy with ``convert`` applied to each of its arrays. Prepared values are shared between
        the tasks of a process: never modify them in place.
    draws : {argument name: :class:`eqflow.random.Draw`}: the random numbers one ensemble cell
        needs per step, e.g. ``{"uniforms": eq.random.uniform("y", "x")}``; a shape entry or bound
        names a site dim or an integer option of the operator (``integers("node", "picks_per_step")``).
    init : ``init(*, <state, inputs, sizes, options>) -> {name: array}``: the operator-owned
        state (declared with dims and dtype in the schema's ``operators.<name>.state``) at the
        first step of a run; checkpointed and resumed with the physical state.
    kernels : {name: :class:`Kernel`}: fast variants of ``update``, in order of preference
        ("auto" takes the first available one).
    """

    update: Callable[..., dict]
    prepare: Callable[..., dict] | None = None
    draws: Mapping[str, Any] = field(default_factory=dict)
    init: Callable[..., dict] | None = None
    kernels: Mapping[str, Kernel] = field(default_factory=dict)

    def __post_init__(self):
        for name, kernel in self.kernels.items():
            if name in (REFERENCE, AUTO) or not isinstance(kernel, Kernel):
                raise TypeError(f"kernels[{name!r}]: expected a Kernel under a name other than 'reference' and "
                                f"'auto', got {type(kernel).__name__}")

    def select_kernel(self, kernel: str, backend: str, device: str | None = None) -> tuple[str, str | None]:
        """(the kernel a run uses, a problem or None) for ``kernel`` = "auto" | "reference" | a name.

        "auto": the first of ``kernels`` available for this backend and device, else the reference.
        """
        if kernel == AUTO:
            kind = (device or "cpu").split(":")[0]
            usable = [n for n, k in self.kernels.items() if k.unavailable(backend, device) is None
                      and (k.auto_devices is None or kind in k.auto_devices)]
            return (usable[0] if usable else REFERENCE), None
        if kernel == REFERENCE:
            return REFERENCE, None
        if not isinstance(kernel, str) or kernel not in self.kernels:
            return REFERENCE, (f"kernel: expected 'auto', 'reference' or one of {sorted(self.kernels)} for this "
                               f"operator, got {kernel!r}")
        why = self.kernels[kernel].unavailable(backend, device)
        return (REFERENCE, f"kernel: {kernel!r} cannot run here: it {why}") if why else (kernel, None)


@dataclass(frozen=True)
class System:
    """Everything eqflow knows about one kind of system.

    ``example`` holds the keyword arguments of a small, fast ``create`` call: the shared
    test suite runs every operator of every registered kind on it. ``tolerance`` is the
    (rtol, atol) within which float histories of different backends must agree (integer
    histories and NumPy histories across chunkings are compared bit for bit).
    """

    kind: str
    create: Callable[..., Any]
    operators: Mapping[str, Operator]
    observables: Mapping[str, Callable[..., Any]]
    theory: Any = None
    schema_path: Path | None = None
    example: Mapping[str, Any] = field(default_factory=dict)
    tolerance: tuple[float, float] = (1e-9, 1e-12)

    @cached_property
    def schema(self) -> Schema:
        """The parsed schema (``schemas/<kind>.json`` unless ``schema_path`` names another)."""
        path = self.schema_path or schema_dir() / f"{self.kind}.json"
        schema = load(path)
        if schema.kind != self.kind:
            raise SchemaError(f"kind: the System is named {self.kind!r} but its schema {Path(path).name} says "
                              f"\"kind\": {schema.kind!r}; the two names must agree (rename the JSON's \"kind\" "
                              f"too when copying a system)")
        return schema

    def operator(self, name: str) -> Operator:
        if name not in self.operators:
            raise SchemaError(f"operator: expected one of {sorted(self.operators)} for kind {self.kind!r}, "
                              f"got {name!r}")
        return self.operators[name]

    def contract_problems(self) -> list[str]:
        """Mismatches between the schema's keys and the code's (operators, observables)."""
        problems = []
        for what, code, declared in (("operators", self.operators, self.schema.operators),
                                     ("observables", self.observables, self.schema.observables)):
            if set(code) != set(declared):
                problems.append(f"{self.kind} {what}: the code has {sorted(code)}, the schema {sorted(declared)}")
        for name, op in self.operators.items():
            owned = self.schema.operators.get(name)
            if owned and owned.state and op.init is None:
                problems.append(f"{self.kind}.{name}: the schema declares owned state {sorted(owned.state)}, "
                                f"the operator has no init")
        return problems


def call_with(fn: Callable, available: Mapping[str, Any]) -> Any:
    """Call ``fn`` with the keyword arguments it names, taken from ``available``.

    Arguments with a default are passed only when available; a missing required one is an error.
    """
    return bind(fn, available)({}, available)


def bind(fn: Callable, available: Mapping[str, Any]) -> Callable[[dict, dict], Any]:
    """``fn`` as a function of (state, inputs) dicts, its argument names resolved once (hot loop)."""
    required, optional = accepted_names(fn)
    missing = [k for k in required if k not in available]
    if missing:
        raise TypeError(f"{fn.__module__}.{fn.__qualname__}: needs {missing}, which the system does not provide "
                        f"(available: {sorted(available)})")
    names = (*required, *(o for o in optional if o in available))

    def bound(state: dict, inputs: dict):
        return fn(**{k: state[k] if k in state else inputs[k] for k in names})

    return bound


@cache
def accepted_names(fn: Callable) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, optional) keyword names that ``fn`` accepts."""
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = [p for p in inspect.signature(fn).parameters.values() if p.kind in kinds]
    return (tuple(p.name for p in params if p.default is inspect.Parameter.empty),
            tuple(p.name for p in params if p.default is not inspect.Parameter.empty))


PREPARED_RUNS = 4  # prepared inputs kept per process (least recently used first out): a few runs' worth
_prepared: OrderedDict = OrderedDict()  # key -> (lock, {name: value} or None until made)
_prepared_lock = threading.Lock()


def prepare_key(kind: str, op: Operator, given: Mapping[str, Any], known: Mapping[str, str] | None = None) -> str:
    """A deterministic token of the kind and of what ``op.prepare`` reads from ``given`` (its names and
    values): equal inputs give equal tokens in every process. ``known``: {name: token} of values
    already tokenized (:func:`token_of`), so that a large input shared by many chunks is hashed once."""
    from dask.base import tokenize

    required, optional = accepted_names(op.prepare)
    names = sorted(k for k in (*required, *optional) if k in given)
    known = known or {}
    return tokenize(kind, getattr(op.prepare, "__module__", ""), getattr(op.prepare, "__qualname__", ""),
                    [(k, known[k] if k in known else token_of(given[k])) for k in names])


def token_of(value) -> str:
    """The token :func:`prepare_key` uses for one input value."""
    from dask.base import tokenize

    return tokenize(value)


def prepared(kind: str, op: Operator, given: Mapping[str, Any], key: str | None = None) -> dict:
    """``op.prepare``'s values for ``given``, made once per distinct inputs in this process.

    The client of a run and every chunk task of every segment that runs in the same process
    (threads of the local scheduler, or of a dask worker) share one call, as do operators with
    the same prepare function (the key is the function and :func:`prepare_key`); the last
    ``PREPARED_RUNS`` distinct inputs are kept, so that memory does not grow over many runs.
    ``key``: :func:`prepare_key` of ``given`` when the caller has it (a run's client makes it once,
    so that a task does not hash its inputs, up to a GB of integrals, every segment).
    Thread-safe: a second thread asking for the same inputs waits for the first one's values.
    An error is raised to every caller and nothing is kept.
    """
    if op.prepare is None:
        return {}
    key = (op.prepare, key or prepare_key(kind, op, given))
    with _prepared_lock:
        entry = _prepared.get(key)
        if entry is None:
            entry = _prepared[key] = [threading.Lock(), None]
        _prepared.move_to_end(key)
        while len(_prepared) > PREPARED_RUNS:
            _prepared.popitem(last=False)
    with entry[0]:
        if entry[1] is None:
            try:
                entry[1] = dict(call_with(op.prepare, given))
            except BaseException:
                with _prepared_lock:
                    if _prepared.get(key) is entry:
                        del _prepared[key]
                raise
        return entry[1]


def clear_prepared() -> None:
    """Forget every prepared input of this process (they are rebuilt on next use)."""
    with _prepared_lock:
        _prepared.clear()
