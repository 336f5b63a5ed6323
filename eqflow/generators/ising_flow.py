"""A flow-matching generator of Ising equilibria along a cooling schedule.

After Pivi, Gazza, Evangelista, Amadini & Gabbrielli, "On the flow matching interpretability"
(arXiv 2510.21210): an encoder from spins to a continuous latent, a temperature-conditioned
flow-matching vector field whose path passes through the thermal equilibria of the schedule's
temperatures, and a projector back to spins. Only the paper's abstract was available; every
choice below that it does not fix is ours and is stated here.

Training data: the equilibrium configurations an ``eq.anneal`` store holds (Ising,
``schedule={"temperature": ...}``, ``spin`` recorded), read lazily from Zarr stage by stage:
per stage and member only the records at or after ``stage_equilibrated_at`` (where a stage's
window was not detected, the stage's second half), every ``thin``-th of them.

Model (all choices ours where the abstract is silent):

- Encoder: x = s + sigma eps, eps ~ N(0, 1) per site (Gaussian dequantisation of the +-1
  spins into R^{L_y x L_x}, sigma = 0.25 by default, so that sign(x) = s but for a fraction
  Phi(-1/sigma) ~ 3e-5 of the sites).
- Path: the K distinct schedule temperatures sorted hot to cold, T_1 > ... > T_K, sit at flow
  times tau_k = k / K; tau_0 = 0 is the noise N(0, 1) (the infinite-temperature end, beta = 0).
  Segment k (tau_{k-1} -> tau_k) is conditional flow matching between the encoded equilibria
  at T_{k-1} and T_k (Lipman et al. 2023, "Flow matching for generative modeling", ICLR), the
  pairs matched by minibatch optimal transport (Tong et al. 2024, TMLR, OT-CFM; spin-flip aware)
  or, with ``coupling="independent"``, drawn independently; chaining the K segments is ours: x_tau =
  (1 - s) x_{k-1} + s x_k, s = K tau - (k - 1), regressed onto u = K (x_k - x_{k-1}). The
  learned marginal field then carries N(0, 1) through every stage's equilibrium in turn: the
  flow's intermediate states are the equilibria of the cooling schedule.
- Vector field: v(x, tau, beta) = a periodic convolutional network (3x3 kernels on the torus,
  written as wrapped windows and one matrix product per layer), SiLU, conditioned by two
  constant input planes tau and J beta(tau) (beta interpolated linearly between the knots);
  it is translation-equivariant on the torus (rotations and reflections of the lattice are
  learned, not built in) and works for any L (the weights do not depend on L). At h = 0 it is made odd,
  v(-x) = -v(x), so the spin-flip symmetry holds exactly.
- Projector: s = sign(x) per site (a deterministic map that keeps the lattice), +1 at 0.
- Sampling at T: tau(T) from beta(T) by the same interpolation (T within the schedule's
  range, else an error); fixed-step Euler from tau = 0 with ``steps`` steps per segment. On the
  schedule's temperatures the target is the equilibrium; between them the path's interpolant,
  not an equilibrium (documented, not refused). Noise is drawn by a torch generator seeded
  from (seed, T): the same seed and T give the same samples, whatever else is asked for.
  Every temperature starts from its own noise, so points are statistically independent.

``flow-matching`` (Meta) and ``torchcfm`` were evaluated and not adopted: their loss is the
few lines above, their path samplers are two-marginal (no chain of stage marginals), and
torchcfm would pull in POT, torchdyn, pandas, absl and matplotlib; the loop here is our own.
"""
from __future__ import annotations

import contextlib
import json
import math
import time

import numpy as np
import xarray as xr

FORMAT = 1  # version of the saved generator file


def training_data(history: xr.Dataset, thin: int = 1) -> tuple[np.ndarray, list[np.ndarray], dict]:
    """The equilibrium spins of an Ising anneal store, per schedule temperature.

    Returns ``(temperatures, spins, lattice)``: distinct temperatures sorted hot to cold (K), a
    list of int8 arrays (n_k, L_y, L_x) read lazily stage by stage, and {"coupling", "field",
    "size"}. Raises a ValueError naming what is missing.
    """
    _check_history(history)
    if isinstance(thin, bool) or not isinstance(thin, (int, np.integer)) or thin < 1:
        raise ValueError(f"thin: expected a positive integer, got {thin!r}")
    spin = history["spin"]
    dim = spin.dims[0]
    suffix = dim[len("step"):]
    stage_of = history[f"step_stage{suffix}"].values
    steps = history[dim].values
    starts = history["stage_equilibrated_at"].load().values  # (stage, member)
    schedule = history["temperature_stage"].values
    pooled: dict[float, list] = {}
    for k, temperature in enumerate(schedule):
        inside = np.flatnonzero(stage_of == k)
        if k == 0 and inside.size and steps[inside[0]] == int(history.attrs.get("eqflow_step_start", 0)):
            inside = inside[1:]  # the initial state is no equilibrium sample
        if inside.size < 2:
            raise ValueError(f"history: stage {k} (T = {temperature}) holds {inside.size} spin record(s); expected "
                             f">= 2 (record spin more often or run longer stages)")
        block = spin.isel({dim: inside}).values  # this stage only: the store is read stage by stage
        taken = []
        for j in range(block.shape[1]):
            start = starts[k, j]
            if start < 0:  # no window detected: the stage's second half
                start = steps[inside[len(inside) // 2]]
            keep = np.flatnonzero(steps[inside] >= start)[::thin]
            taken.append(block[keep, j])
        pooled.setdefault(float(temperature), []).extend(taken)
    temperatures = np.array(sorted(pooled, reverse=True))
    spins = [np.concatenate(pooled[t]).astype(np.int8) for t in temperatures]
    lattice = {"coupling": float(history["coupling"].values), "field": float(history["field"].values),
               "size": [int(history.sizes["y"]), int(history.sizes["x"])]}
    return temperatures, spins, lattice


def _check_history(history) -> None:
    if not isinstance(history, xr.Dataset):
        raise ValueError(f"history: expected an xarray Dataset from eq.anneal / eq.open, got {type(history).__name__}")
    kind = history.attrs.get("eqflow_kind")
    if kind != "ising":
        raise ValueError(f"history: expected an Ising history (attrs['eqflow_kind'] == 'ising'), got {kind!r}")
    missing = [k for k in ("stage_equilibrated_at", "temperature_stage") if k not in history.variables]
    if missing:
        raise ValueError(f"history: expected an anneal store of temperature (eq.anneal(..., schedule="
                         f"{{'temperature': ...}})), got one without {missing}")
    if "spin" not in history:
        raise ValueError(f"history: expected the state 'spin' recorded along the steps (record={{'spin': k}}), got "
                         f"records {sorted(history.data_vars)}")
    dims = history["spin"].dims
    if len(dims) != 4 or dims[1:] != ("member", "y", "x"):
        raise ValueError(f"history: expected spin with dims (step, member, y, x) (one schedule, no sweep dims), got "
                         f"{dims}")
    for name in ("coupling", "field"):
        if history[name].ndim:
            raise ValueError(f"history: expected a scalar {name}, got dims {history[name].dims}")
    if float(history["coupling"].values) <= 0:
        raise ValueError(f"history: expected a ferromagnetic coupling J > 0, got {float(history['coupling'].values)}")


def _network(hidden: int, layers: int, symmetric: bool):
    import torch
    from torch import nn

    class PeriodicConv(nn.Module):
        """A 3x3 convolution on the torus, channels last: wrap one row and column around each side, take
        the 9 shifted L_y x L_x windows, one matrix product (several times faster on a CPU than a
        circular-padded Conv2d at small L)."""

        def __init__(self, width: int, out: int):
            super().__init__()
            self.linear = nn.Linear(9 * width, out)

        def forward(self, h):  # (B, L_y, L_x, C)
            ny, nx = h.shape[1:3]
            p = torch.cat([h[:, -1:], h, h[:, :1]], dim=1)
            p = torch.cat([p[:, :, -1:], p, p[:, :, :1]], dim=2)
            return self.linear(torch.cat([p[:, dy:dy + ny, dx:dx + nx] for dy in range(3) for dx in range(3)], -1))

    class VectorField(nn.Module):
        """v(x, tau, J beta): a periodic CNN on the torus (translation-equivariant); odd in x when ``symmetric``."""

        def __init__(self):
            super().__init__()
            parts, width = [], 3
            for _ in range(layers - 1):
                parts += [PeriodicConv(width, hidden), nn.SiLU()]
                width = hidden
            parts.append(PeriodicConv(width, 1))
            self.net = nn.Sequential(*parts)
            self.symmetric = symmetric

        def raw(self, x, tau, beta):
            planes = [x[..., None], tau[:, None, None, None].expand_as(x[..., None]),
                      beta[:, None, None, None].expand_as(x[..., None])]
            return self.net(torch.cat(planes, dim=-1))[..., 0]

        def forward(self, x, tau, beta):
            if self.symmetric:
                return 0.5 * (self.raw(x, tau, beta) - self.raw(-x, tau, beta))
            return self.raw(x, tau, beta)

    return VectorField()


class Generator:
    """A trained flow-matching generator of Ising equilibria (wraps the torch ``model``).

    ``temperatures``: the schedule's distinct temperatures, hot to cold (kelvin);
    ``lattice``: coupling J and field h (k_B K) and the training size; ``config``: the
    hyper-parameters; ``log``: the training losses. ``sample`` works at any L (the field is
    convolutional) but it is trained, and reported, at the training size.
    """

    def __init__(self, model, temperatures, lattice: dict, config: dict, log: dict | None = None):
        self.model = model
        self.temperatures = np.asarray(temperatures, dtype=np.float64)
        self.lattice = dict(lattice)
        self.config = dict(config)
        self.log = dict(log or {})

    # --- the path: tau <-> beta, piecewise linear in beta between the knots --------------------------------
    @property
    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        """(tau_k, J beta_k) for k = 0 .. K: tau_0 = 0 at beta = 0 (noise), then the stages hot to cold."""
        k = len(self.temperatures)
        return np.arange(k + 1) / k, np.concatenate([[0.0], self.lattice["coupling"] / self.temperatures])

    def tau_of(self, temperature) -> np.ndarray:
        taus, betas = self.knots
        return np.interp(self.lattice["coupling"] / np.asarray(temperature, dtype=np.float64), betas, taus)

    def beta_of(self, tau) -> np.ndarray:
        taus, betas = self.knots
        return np.interp(tau, taus, betas)

    def check_temperatures(self, temperatures) -> np.ndarray:
        try:
            t = np.asarray(temperatures, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"temperatures: expected numbers in kelvin, got {temperatures!r}") from None
        t = np.atleast_1d(t)
        low, high = self.temperatures.min(), self.temperatures.max()
        if t.ndim != 1 or t.size == 0 or not np.isfinite(t).all():
            raise ValueError(f"temperatures: expected a non-empty 1-D sequence of finite values (K), got {t.tolist()}")
        outside = t[(t < low * (1 - 1e-12)) | (t > high * (1 + 1e-12))]
        if outside.size:
            raise ValueError(f"temperatures: expected values within the trained schedule's range [{low:g}, {high:g}] "
                             f"K, got {outside.tolist()}")
        if len(np.unique(t)) != t.size:
            raise ValueError(f"temperatures: expected distinct values, got {t.tolist()}")
        return t

    # --- sampling ---------------------------------------------------------------------------------------------
    def spins(self, temperature: float, n: int, seed: int = 0, size=None, batch: int = 1024,
              steps: int | None = None, threads: int | None = None) -> np.ndarray:
        """``n`` spin configurations (int8, (n, L_y, L_x)) at one ``temperature``: Euler along the flow, then sign.

        ``steps``: Euler steps per segment (default: the trained ``config["steps"]``);
        ``threads``: torch threads meanwhile (default: torch's own)."""
        import torch

        (temperature,) = self.check_temperatures([temperature])
        ny, nx = _size(size, self.lattice["size"])
        generator = torch.Generator().manual_seed(_stream(seed, temperature))
        noise = torch.randn((n, ny, nx), generator=generator, dtype=torch.float32)
        grid = self._grid(float(self.tau_of(temperature)), steps or self.config["steps"])
        out = np.empty((n, ny, nx), np.int8)
        self.model.eval()
        with torch.no_grad(), _threads(threads):
            for first in range(0, n, batch):
                x = noise[first:first + batch].clone()
                for a, b in zip(grid[:-1], grid[1:]):
                    tau = torch.full((len(x),), float(a))
                    beta = torch.full((len(x),), float(self.beta_of(a)))
                    x = x + (b - a) * self.model(x, tau, beta)
                out[first:first + len(x)] = np.where(x.numpy() >= 0, 1, -1)
        return out

    def _grid(self, tau: float, steps: int) -> np.ndarray:
        """Euler times from 0 to ``tau``: ``steps`` equal steps per segment, the last segment cut at ``tau``."""
        k = len(self.temperatures)
        fine = np.arange(k * steps + 1) / (k * steps)
        return np.concatenate([fine[fine < tau - 1e-12], [tau]])

    def sample(self, temperatures, n: int, seed: int = 0, *, store, members: int = 4, size=None,
               overwrite: bool = False, batch: int = 1024, steps: int | None = None,
               threads: int | None = None) -> xr.Dataset:
        """``n`` samples per member at each temperature, written as an ordinary Ising history.

        The store is what :func:`eqflow.write_samples` writes: ``spin`` and the Ising observables
        along ``step`` (the sample index), ``member`` and a ``temperature`` sweep (scalar for one
        temperature), coupling and field of the training store; eq.open, eq.summarize and
        :func:`eqflow.systems.ising.thermodynamics` read it unchanged. Member j holds samples j n .. (j + 1) n - 1 of
        the temperature's stream, so the history does not depend on ``batch``.
        """
        import eqflow as eq

        for name, value, low in (("n", n, 1), ("members", members, 1), ("batch", batch, 1), ("steps", steps or 1, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
        t = self.check_temperatures(temperatures)
        ny, nx = _size(size, self.lattice["size"])
        scalar = np.ndim(temperatures) == 0
        system = eq.create("ising", size=(ny, nx), temperature=float(t[0]) if scalar else t.tolist(),
                           members=members, seed=seed, coupling=self.lattice["coupling"], field=self.lattice["field"])
        spins = np.empty((n, members, *([] if scalar else [t.size]), ny, nx), np.int8)
        self.sampling_seconds = {}  # wall time of the draws at each temperature (for benchmarks)
        for i, temperature in enumerate(t):
            started = time.perf_counter()
            drawn = self.spins(temperature, n * members, seed, (ny, nx), batch, steps, threads)
            self.sampling_seconds[float(temperature)] = time.perf_counter() - started
            drawn = drawn.reshape(members, n, ny, nx)
            spins[(slice(None), slice(None)) + (() if scalar else (i,))] = drawn.transpose(1, 0, 2, 3)
        return eq.write_samples(system, {"spin": spins}, store, source="ising.flow", overwrite=overwrite)

    # --- files ------------------------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write weights, schedule, lattice, hyper-parameters and training log to one torch file."""
        import torch

        torch.save({"format": FORMAT, "state_dict": self.model.state_dict(),
                    "temperatures": self.temperatures.tolist(), "lattice": self.lattice, "config": self.config,
                    "log": json.dumps(self.log)}, path)

    @classmethod
    def load(cls, path) -> "Generator":
        """A generator saved by :meth:`save` (weights only: no code is unpickled)."""
        import torch

        found = torch.load(path, weights_only=True)
        if not isinstance(found, dict) or found.get("format") != FORMAT:
            raise ValueError(f"path: expected an Ising flow generator file (format {FORMAT}), got "
                             f"{found.get('format') if isinstance(found, dict) else type(found).__name__}")
        config = found["config"]
        _check_file_config(config, found.get("state_dict"))  # before any allocation the config asks for
        model = _network(config["hidden"], config["layers"], config["symmetric"])
        model.load_state_dict(found["state_dict"])
        return cls(model, found["temperatures"], found["lattice"], config, json.loads(found["log"]))


def _parameter_count(hidden: int, layers: int) -> int:
    """Weights and biases of :func:`_network`: (layers - 1) hidden periodic convolutions, then one to 1 channel."""
    count, width = 0, 3
    for _ in range(layers - 1):
        count += 9 * width * hidden + hidden
        width = hidden
    return count + 9 * width + 1


def _check_file_config(config, state_dict) -> None:
    """A generator file's config, bounded and consistent with the weights the file holds (a
    small file must not make a large model): a ValueError naming the bad entry."""
    if not isinstance(config, dict) or not isinstance(state_dict, dict):
        raise ValueError(f"path: expected a generator file with a config and weights, got config "
                         f"{type(config).__name__} and weights {type(state_dict).__name__}")
    for name, top in (("hidden", 2**16), ("layers", 2**10)):
        value = config.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise ValueError(f"config[{name!r}]: expected an integer in [1, {top}], got {value!r}")
    if not isinstance(config.get("symmetric"), bool):
        raise ValueError(f"config['symmetric']: expected True or False, got {config.get('symmetric')!r}")
    stored = sum(int(v.numel()) for v in state_dict.values() if hasattr(v, "numel"))
    wanted = _parameter_count(config["hidden"], config["layers"])
    if wanted != stored:
        raise ValueError(f"config: hidden={config['hidden']}, layers={config['layers']} make {wanted} weights, the "
                         f"file holds {stored}: expected the config the weights were saved with")


def _size(size, default) -> tuple[int, int]:
    ny, nx = (default if size is None else (size, size) if np.ndim(size) == 0 else size)
    for v in (ny, nx):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2 or v % 2:
            raise ValueError(f"size: expected an even integer >= 2 (or two), got {size!r}")
    return int(ny), int(nx)


def _stream(seed: int, temperature: float) -> int:
    """A torch seed from the user seed and the temperature's bits (SeedSequence mixing)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed!r}")
    bits = int(np.float64(temperature).view(np.uint64))
    words = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32, bits & 0xFFFFFFFF, bits >> 32])
    return int(words.generate_state(1, np.uint64)[0] >> np.uint64(1))


def train(history: xr.Dataset, *, iterations: int = 2000, batch: int = 128, hidden: int = 32, layers: int = 4,
          learning_rate: float = 2e-3, sigma: float = 0.25, steps: int = 16, thin: int = 1, seed: int = 0,
          symmetric: bool | None = None, coupling: str = "ot", threads: int | None = None) -> Generator:
    """Train a :class:`Generator` on the equilibria of an Ising anneal store (see the module docstring).

    Parameters
    ----------
    history : ``eq.anneal``/``eq.open`` of an Ising temperature schedule with ``spin`` recorded.
    iterations : Adam steps (learning rate cosine-decayed to 0); batch : pairs per step.
    hidden, layers : width and depth of the circular CNN (receptive field 2 layers + 1 sites).
    sigma : dequantisation noise of the encoder (spin units). steps : Euler steps per segment
        when sampling. thin : keep every thin-th equilibrium record. seed : initial weights,
        batches and noise. symmetric : odd vector field (default: when h = 0).
    coupling : "ot" (minibatch optimal transport between the two ends of a segment, see
        :func:`_ot_pairs`) or "independent" (plain conditional flow matching).
    threads : torch threads while training (default: torch's own).
    """
    import torch

    for name, value in (("iterations", iterations), ("batch", batch), ("hidden", hidden), ("layers", layers),
                        ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    for name, value in (("learning_rate", learning_rate), ("sigma", sigma)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name}: expected a positive number, got {value!r}")
    if coupling not in ("ot", "independent"):
        raise ValueError(f"coupling: expected 'ot' or 'independent', got {coupling!r}")
    temperatures, spins, lattice = training_data(history, thin)  # checks the history, then reads it
    symmetric = lattice["field"] == 0 if symmetric is None else bool(symmetric)
    config = {"iterations": int(iterations), "batch": int(batch), "hidden": int(hidden), "layers": int(layers),
              "learning_rate": float(learning_rate), "sigma": float(sigma), "steps": int(steps), "thin": int(thin),
              "seed": int(seed), "symmetric": symmetric, "coupling": coupling,
              "samples_per_stage": [len(s) for s in spins]}
    with _threads(threads):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _network(hidden, layers, symmetric)
        generator = Generator(model, temperatures, lattice, config)
        generator.log = _fit(generator, [torch.from_numpy(s.astype(np.float32)) for s in spins], seed)
    return generator


def _ot_pairs(segment, x0, x1, k: int, symmetric: bool):
    """Minibatch optimal-transport coupling (Tong et al. 2024, OT-CFM): within each segment's rows,
    reorder the x1 so that sum |x0 - x1|^2 is least (Hungarian algorithm); with the spin-flip
    symmetry, each x1 may first be replaced by -x1 (an equally likely configuration at h = 0).
    A permutation of samples keeps both marginals, so the path still passes through each
    stage's equilibrium; the pairs are closer, so the regression target is less noisy."""
    import torch
    from scipy.optimize import linear_sum_assignment

    x1 = x1.clone()
    for j in range(k):
        rows = torch.nonzero(segment == j)[:, 0]
        if len(rows) < 2:
            continue
        a, b = x0[rows].flatten(1), x1[rows].flatten(1)
        cost = torch.cdist(a, b) ** 2
        flip = None
        if symmetric:
            flipped = torch.cdist(a, -b) ** 2
            flip = flipped < cost
            cost = torch.minimum(cost, flipped)
        _, order = linear_sum_assignment(cost.numpy())
        chosen = x1[rows][order]
        if flip is not None:
            sign = torch.where(flip[torch.arange(len(rows)), torch.as_tensor(order)], -1.0, 1.0)
            chosen = chosen * sign[:, None, None]
        x1[rows] = chosen
    return x1


@contextlib.contextmanager
def _threads(threads):
    """torch's intra-op threads set to ``threads`` meanwhile (None: unchanged)."""
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads: expected a positive integer, got {threads!r}")
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _fit(generator: Generator, data: list, seed: int) -> dict:
    """Multi-marginal conditional flow matching along the schedule (module docstring); returns the loss log."""
    import torch

    config, model = generator.config, generator.model
    k = len(data)
    rng = torch.Generator().manual_seed(_stream(seed, 0.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config["iterations"])
    _, betas = generator.knots
    betas = torch.tensor(betas, dtype=torch.float32)
    shape, sigma, batch = data[0].shape[1:], config["sigma"], config["batch"]
    losses, started = [], time.perf_counter()
    model.train()
    for _ in range(config["iterations"]):
        segment = torch.randint(0, k, (batch,), generator=rng)  # segment j: knot j -> knot j + 1
        s = torch.rand((batch,), generator=rng)
        ends = []
        for offset in (0, 1):
            x = torch.randn((batch, *shape), generator=rng)  # knot 0 is the noise itself
            for j in range(1, k + 1):
                rows = torch.nonzero(segment + offset == j)[:, 0]
                if len(rows):
                    pick = torch.randint(0, len(data[j - 1]), (len(rows),), generator=rng)
                    x[rows] = data[j - 1][pick] + sigma * x[rows]  # encoder: s + sigma eps
            ends.append(x)
        x0, x1 = ends
        if config["coupling"] == "ot":
            x1 = _ot_pairs(segment, x0, x1, k, config["symmetric"])
        xt = (1 - s)[:, None, None] * x0 + s[:, None, None] * x1
        tau = (segment + s) / k
        beta = betas[segment] + s * (betas[segment + 1] - betas[segment])
        loss = ((model(xt, tau, beta) - k * (x1 - x0)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    return {"loss": losses[:: max(1, len(losses) // 200)], "final_loss": float(np.mean(losses[-50:])),
            "seconds": time.perf_counter() - started}
