"""``eqflow`` on the command line (and ``python -m eqflow``).

``--version`` answers from the package metadata alone; every other command loads
:mod:`eqflow.cli` (and with it xarray, zarr and the runner) first.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "--version":
        from ._version import __version__

        print(f"eqflow {__version__}")
        return 0
    from .cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
