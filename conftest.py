"""Collection of the doctests in eqflow/: a module whose optional dependency is missing is left out."""
import importlib.util

NEEDS_TRITON = ["eqflow/systems/ising/gpu.py", "eqflow/random/triton_philox.py"]
collect_ignore = [] if importlib.util.find_spec("triton") else NEEDS_TRITON
