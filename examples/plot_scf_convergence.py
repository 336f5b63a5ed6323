"""SCF solvers compared: Roothaan, damping and DIIS on a Hubbard ring
====================================================================

Unrestricted Hartree-Fock of an 18-site Hubbard ring at U = 4 t (half filling), 8 members started
from randomly rotated core guesses (``rotation=1``). The same ensemble is solved by the plain
Roothaan iteration (``fixed_point``), linear density mixing (``damping``) and Pulay's DIIS; each
member stops when its residual ``||FDS - SDF||`` is below 1e-8, or after 150 iterations. The
printed table says which members converged and when; the plot shows the residual of every member
against the iteration. Measured 2026-12-07 on a shared 2-core VM: 4 s of CPU (45 s wall under load).
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import eqflow as eq

folder = Path(tempfile.mkdtemp())
system = eq.create("scf", problem="hubbard", sites=18, interaction=4.0, members=8, seed=1, rotation=1.0)

# %%
# One run per solver, the same system and stop rule.
runs = {}
for operator in ("fixed_point", "damping", "diis"):
    runs[operator] = eq.run(system, operator, steps=150, store=folder / f"{operator}.zarr", progress=False,
                            record={"energy": 1, "residual": 1}, stop=eq.stop.converged("residual", 1e-8))
    hist = runs[operator]
    print(f"{operator:12s} stop reasons {sorted(set(hist.stop_reason.values.ravel().tolist()))}, "
          f"steps to converge: {hist.stopped_at.values.ravel().tolist()}")

# %%
# Residual against iteration, every member.
fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), sharey=True, layout="constrained")
for ax, (operator, hist) in zip(axes, runs.items()):
    residual = hist.residual.squeeze()
    for m in residual.member.values:
        ax.semilogy(residual.step, residual.sel(member=m), lw=0.8)
    ax.set(title=operator, xlabel="iteration")
axes[0].set_ylabel("||FDS - SDF||")
plt.show()
