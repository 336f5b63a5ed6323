"""Collection of the doctests in eqflow/: a module whose optional dependency is missing is left out."""
import importlib.util

collect_ignore = [] if importlib.util.find_spec("triton") else ["eqflow/systems/ising/gpu.py"]
