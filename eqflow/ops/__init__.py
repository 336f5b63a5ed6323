"""Numerics that two or more systems share, in one home (each module imports its heavy
dependencies, scikit-learn or torch, inside the functions that need them).

- :mod:`.learning`: the 8x8 digits data set, cross-entropies of class scores.
"""
