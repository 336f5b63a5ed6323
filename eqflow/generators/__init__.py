"""Applications built on eqflow's histories, beside the systems rather than inside them.

- :mod:`.ising_flow`: a flow-matching generator of Ising equilibria along a cooling schedule,
  trained on an ``eq.anneal`` store (torch, imported when used);
- :mod:`.fidelity`: how close Ising samples are to equilibrium (exact Boltzmann comparison on
  small lattices, G(r), side-by-side tables against a Monte Carlo history).

They use eqflow's public API (``eq.create``, ``eq.write_samples``, a system's theory); no
system module imports them. Importing this package imports neither module.
"""
