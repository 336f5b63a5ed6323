"""Errors raised by eqflow; each names the variable, the expected and the actual value."""
from __future__ import annotations


class SchemaError(ValueError):
    """A Dataset or an input does not match its system's schema.

    ``problems`` lists every bad variable at once, one readable line each.
    """

    def __init__(self, problems: list[str] | str, *, kind: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        head = f"invalid {kind!r} system" if kind else "invalid input"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head}: {len(self.problems)} problem(s)\n{lines}")


class StoreError(ValueError):
    """A store cannot be written, resumed or opened as asked; nothing was changed."""
