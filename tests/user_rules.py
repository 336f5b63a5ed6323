"""A stop rule and a reporter as a user writes them, outside the package (tests/test_run_protocols.py).

They live in a module of their own, which imports nothing from the test suite, because a
dask.distributed worker in another process imports the module that defines them to unpickle them.
"""
import numpy as np

import eqflow as eq

import toy  # noqa: F401  (registers the template system 'relax' in every process that imports the rules)


class Shrunk(eq.stop.Rule):
    """Stop a member once ``var`` is below ``fraction`` of its value at the run's first step.

    The start value is the rule's own checkpointed state: a resumed run must not take it again
    from the state it resumes from (it would then stop later)."""

    name, outcome = "shrunk", "converged"

    def __init__(self, var: str, fraction: float):
        self.var, self.fraction = var, float(fraction)

    def initial_state(self, value, ensemble_ndim):
        return {f"shrunk_start_{self.var}": ((), np.asarray(value, dtype=np.float64))}

    def check(self, value, state):
        xp = eq.backends.namespace(value)
        start = state[f"shrunk_start_{self.var}"]
        return xp.astype(value, start.dtype) < self.fraction * start, {}


class Tally:
    """A reporter every ``every`` steps: the segments it saw, and the sum of the records of ``var`` in each."""

    def __init__(self, var: str, every: int):
        self.var, self.every, self.reads = var, every, (var,)
        self.calls, self.begun, self.ended = [], [], 0

    def begin(self, run):
        self.begun.append((run.kind, run.position, run.plan.last))

    def next_report(self, step):
        return step + self.every - step % self.every

    def report(self, segment):
        steps, values = segment.records(self.var, since=segment.last_report)
        assert steps.min() > segment.last_report and steps.max() == segment.end
        self.calls.append((segment.last_report, segment.end, len(steps), float(np.nansum(values)),
                           int(segment.running().sum())))

    def end(self, run):
        self.ended += 1
