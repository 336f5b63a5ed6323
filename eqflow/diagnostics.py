"""Equilibration and convergence diagnostics for ensembles of time series.

Public functions take an :class:`xarray.DataArray` with a ``step`` dimension (and,
where relevant, a chain dimension such as ``member``), broadcast over every other
dimension (e.g. ``temperature``) and stay lazy on dask input.  Autocovariances are
computed by FFT, O(T log T) per series.

References: A. D. Sokal, Monte Carlo Methods in Statistical Mechanics (1997 notes) and
D. Foreman-Mackey et al., PASP 125, 306 (2013) (emcee); J. D. Chodera, J. Chem. Theory
Comput. 12, 1799 (2016) (pymbar); A. Vehtari, A. Gelman, D. Simpson, B. Carpenter,
P.-C. Buerkner, Bayesian Analysis 16(2), 667 (2021) (ArviZ).
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.special
import xarray as xr

__all__ = ["integrated_time", "statistical_inefficiency", "detect_equilibration", "rhat", "ess", "mixed"]

MINTIME = 3  # pymbar: C(t) <= 0 ends the sum only for lags t > MINTIME
RELIABLE_TIMES = 50  # emcee's `tol`: an estimate is trusted when T >= 50 tau
_PRUNE_MARGIN = 1e-6  # relative slack so that pruning never drops a float32 tie
_BLOCK_ELEMENTS = 2**21  # rows x samples handled at once (bounds memory)
FIRST_LAGS, LAG_GROWTH = 256, 2  # lag batches of the statistical inefficiency (see _Suffixes.inefficiency)


# --------------------------------------------------------------------------- plumbing
def _check(da, func, dims, min_sizes):
    """Raise ValueError naming variable, dim, expected and actual size if ``da`` is unfit."""
    if not isinstance(da, xr.DataArray):
        raise TypeError(f"{func}: expected an xarray.DataArray, got {type(da).__name__}")
    name = "<unnamed>" if da.name is None else da.name
    for dim, min_size in zip(dims, min_sizes):
        if dim not in da.dims:
            raise ValueError(f"{func}: variable {name!r} has no dimension {dim!r}; its dims are {da.dims}")
        if da.sizes[dim] < min_size:
            raise ValueError(f"{func}: variable {name!r} needs at least {min_size} entries "
                             f"along {dim!r}, got {da.sizes[dim]}")


def _apply(row_func, da, core_dims, dtypes):
    """Run ``row_func`` on (rows, *core_dims) float arrays; lazy (one task per chunk) on dask."""
    def on_block(x):
        lead = x.shape[: x.ndim - len(core_dims)]
        outs = row_func(np.asarray(x, dtype=float).reshape((-1,) + x.shape[len(lead):]))
        outs = tuple(np.asarray(o).reshape(lead) for o in (outs if isinstance(outs, tuple) else (outs,)))
        return outs if len(outs) > 1 else outs[0]

    if hasattr(da.data, "magnitude"):  # pint-backed data: the diagnostics are scale-free
        da = da.copy(data=da.data.magnitude)
    if da.chunks is not None:
        da = da.chunk({dim: -1 for dim in core_dims})
    return xr.apply_ufunc(on_block, da, input_core_dims=[list(core_dims)],
                          output_core_dims=[[] for _ in dtypes], dask="parallelized",
                          output_dtypes=list(dtypes), keep_attrs=False)


def _dimensionless(da, name, long_name):
    return da.rename(name).assign_attrs(units="1", long_name=long_name)


def _lag_products(y):
    """sum_i y[i] y[i+k] for every lag k along the last axis (zero-padded FFT)."""
    T = y.shape[-1]
    n_fft = scipy.fft.next_fast_len(2 * T - 1, real=True)
    spectrum = scipy.fft.rfft(y, n=n_fft, axis=-1)
    return scipy.fft.irfft(spectrum * spectrum.conj(), n=n_fft, axis=-1)[..., :T]


# ------------------------------------------------------------------ integrated time
def _integrated_time_rows(x, c):
    """x: (rows, chains, T) -> tau and reliability flag per row (emcee's estimator)."""
    T = x.shape[-1]
    acov = _lag_products(x - x.mean(axis=-1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        taus = 2.0 * np.cumsum((acov / acov[..., :1]).mean(axis=1), axis=-1) - 1.0
    inside = np.arange(T) < c * taus  # windows M with M < c tau(M)
    window = np.where(inside.any(axis=-1), np.argmin(inside, axis=-1), T - 1)
    tau = np.take_along_axis(taus, window[:, None], axis=-1)[:, 0]
    return tau, (~inside).any(axis=-1) & (T >= RELIABLE_TIMES * tau)


def integrated_time(da, dim="step", chain_dim=None, c=5.0):
    """Integrated autocorrelation time with Sokal's automatic window (emcee's estimator).

    tau(M) = 1 + 2 sum_{t=1..M} rho(t) at the smallest window M >= c tau(M); with
    ``chain_dim`` the normalized autocorrelation rho is averaged over chains first.
    Equals ``emcee.autocorr.integrated_time`` (chains = walkers).

    Parameters: da (float; ``dim`` >= 2 steps, optional ``chain_dim``; other dims
    broadcast), dim, chain_dim (str or None), c (float, emcee's default 5).
    Returns tau (units "1", i.e. steps) without ``dim``/``chain_dim``.  Short chains
    never raise: the bool coordinate ``reliable`` is False where T < 50 tau (emcee's
    ``tol``) or no window satisfies M >= c tau(M) (then tau = tau(0) = 1, as emcee).
    A constant series gives NaN.
    """
    core = [dim] if chain_dim is None else [chain_dim, dim]
    _check(da, "integrated_time", core[::-1], [2, 1])
    tau, reliable = _apply(lambda x: _integrated_time_rows(x.reshape(len(x), -1, x.shape[-1]), c),
                           da, core, (float, bool))
    return _dimensionless(tau.assign_coords(reliable=reliable), "tau", "integrated autocorrelation time")


# ------------------------------------------------------- statistical inefficiency
class _Suffixes:
    """Centered rows y (rows, T), prefix sums X and whole-series lag sums W_k = sum_i y_i y_{i+k}."""

    def __init__(self, x):
        self.y = x - x.mean(axis=1, keepdims=True)
        rows_n, self.T = x.shape
        self.cumsum = np.concatenate([np.zeros((rows_n, 1)), np.cumsum(self.y, axis=1)], axis=1)
        self.whole = _lag_products(self.y)
        self.lags = np.full(rows_n, FIRST_LAGS)  # each row's first batch of lags (see inefficiency)
        changed = np.diff(x, axis=1) != 0  # x[s:] is exactly constant iff s >= last_change
        self.last_change = np.where(changed.any(axis=1), self.T - 1 - np.argmax(changed[:, ::-1], axis=1), 0)

    def centered_lag_sums(self, rows, starts, n_lags):
        """r_s(k) = sum_{i=s}^{T-1-k} (y_i - m_s)(y_{i+k} - m_s), k < n_lags, m_s = mean of y[s:]."""
        T, lags, X = self.T, np.arange(n_lags), self.cumsum
        use_prefix = starts < T - starts  # then W_k minus a prefix part is cheaper
        n_fft = 2 ** np.ceil(np.log2(np.where(use_prefix, starts, T - starts) + n_lags)).astype(int)
        raw = np.empty((rows.size, n_lags))
        for prefix, size in set(zip(use_prefix.tolist(), n_fft.tolist())):
            group = np.flatnonzero((use_prefix == prefix) & (n_fft == size))
            for sel in np.array_split(group, -(-group.size * size // _BLOCK_ELEMENTS)):
                raw[sel] = self._raw_lag_sums(rows[sel], starts[sel], n_lags, prefix, size)
        r, s, n = rows[:, None], starts[:, None], (T - starts)[:, None]
        mean = (X[r, T] - X[r, s]) / n
        return raw + mean * (X[r, np.clip(s + lags, 0, T)] - X[r, np.clip(T - lags, 0, T)] - lags * mean)

    def _raw_lag_sums(self, rows, starts, n_lags, prefix, n_fft):
        """sum_{i=s}^{T-1-k} y_i y_{i+k} from the FFT of a prefix y[:s] or a suffix y[s:], each copied
        into a zero-padded row (slices, not a gather: the copies cost less than the FFTs)."""
        T, y = self.T, self.y
        a = np.zeros((rows.size, n_fft))
        pairs = list(enumerate(zip(rows.tolist(), starts.tolist())))
        if not prefix:
            for j, (row, s) in pairs:
                a[j, : T - s] = y[row, s:]
            fa = scipy.fft.rfft(a, axis=1)
            return scipy.fft.irfft(fa.conj() * fa, n=n_fft, axis=1)[:, :n_lags]
        b = np.zeros((rows.size, n_fft))
        for j, (row, s) in pairs:
            a[j, :s] = y[row, :s]
            b[j, : min(s + n_lags - 1, T)] = y[row, : min(s + n_lags - 1, T)]
        head = scipy.fft.irfft(scipy.fft.rfft(a, axis=1).conj() * scipy.fft.rfft(b, axis=1), n=n_fft, axis=1)
        return self.whole[rows, :n_lags] - head[:, :n_lags]  # sum over all i, less sum_{i<s}

    def inefficiency(self, rows, starts, include_last_lag):
        """pymbar's g of each suffix x[row, s:]; lags up to N-1 (FFT estimator) or N-2 (loop).

        Lags are computed in batches that grow ``LAG_GROWTH``-fold until C(t) <= 0 is seen; a row
        starts at the batch that sufficed for its earlier suffixes (``self.lags``): the suffixes of
        one series cross at similar lags, so most need one batch. The batch sizes change only the
        FFTs' rounding, never which lags are summed."""
        g, lags, todo = np.empty(rows.size), self.lags[rows], np.arange(rows.size)
        while todo.size:
            n = self.T - starts[todo]
            size = np.minimum(lags[todo], n)
            resolved = np.zeros(todo.size, bool)
            for k in np.unique(size).tolist():
                sel = np.flatnonzero(size == k)
                r = self.centered_lag_sums(rows[todo[sel]], starts[todo[sel]], k)
                g_sel, resolved[sel] = _truncated_inefficiency(r, n[sel], n[sel] - (1 if include_last_lag else 2))
                g[todo[sel]] = g_sel
            lags[todo[~resolved]] *= LAG_GROWTH
            todo = todo[~resolved]
        np.maximum.at(self.lags, rows, lags)
        constant = starts >= self.last_change[rows]  # pymbar: NaN -> g = 1, or error -> g = N + 1
        return np.where(constant, 1.0 if include_last_lag else self.T - starts + 1.0, g)


def _truncated_inefficiency(r, n, last_lag):
    """g = 1 + sum_{t=1}^{t*-1} 2 C(t) (1 - t/N), t* the first t > MINTIME with C(t) <= 0.

    C(t) = [r(t)/(N-t)] / [r(0)/N] (unbiased, as statsmodels' acf); lags t <= last_lag.
    Returns g >= 1 and whether the r(k) given (k < K) sufficed to decide.
    """
    lags = np.arange(r.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):  # lags >= N are masked out
        corr = (r / (n[:, None] - lags)) / (r[:, :1] / n[:, None])
        crossing = (corr <= 0) & (lags > MINTIME) & (lags <= last_lag[:, None])
        has_crossing = crossing.any(axis=1)
        stop = np.where(has_crossing, np.argmax(crossing, axis=1), last_lag + 1)[:, None]
        terms = np.where((lags >= 1) & (lags < stop), 2.0 * corr * (1.0 - lags / n[:, None]), 0.0)
    g = 1.0 + terms.sum(axis=1)
    return np.where(g >= 1.0, g, 1.0), has_crossing | (r.shape[1] > last_lag)


def statistical_inefficiency(da, dim="step"):
    """Statistical inefficiency g = 1 + 2 tau of each series (Chodera 2016, eq. 3-5).

    g = 1 + 2 sum_{t=1}^{t*-1} C(t) (1 - t/T), C the unbiased normalized
    autocorrelation and t* the first t > 3 with C(t) <= 0; g >= 1.  Equals
    ``pymbar.timeseries.statistical_inefficiency(x, fft=True)``.

    Parameters: da (float; ``dim`` >= 2 steps; other dims broadcast), dim (str).
    Returns g (units "1") without ``dim``; 1 for a constant series.
    """
    _check(da, "statistical_inefficiency", [dim], [2])
    g = _apply(lambda x: _Suffixes(x).inefficiency(np.arange(len(x)), np.zeros(len(x), int), True),
               da, [dim], (float,))
    return _dimensionless(g, "g", "statistical inefficiency")


# ---------------------------------------------------------- equilibration detection
def _binary_search_rows(x, ctx, groups=None):
    """pymbar's ``detect_equilibration_binary_search`` (bs_nodes=10), rows in lockstep.

    groups (optional int label per row): only each group's largest t0 is wanted (see
    :func:`latest_equilibration`). A row's t0 lies in its [start, end] bracket at every level, so a
    row whose ``end`` is below a proven lower bound of its group's largest t0 (the ``start`` of a
    live row, the t0 of a finished one) cannot hold it, and is searched no further (its t0 is then
    not its own, but below its group's largest). The largest is never dropped: the same maxima.
    """
    rows_n, T = x.shape
    t0, g, n_eff = np.zeros(rows_n, int), np.ones(rows_n), np.full(rows_n, float(T))
    start, end, cache = np.ones(rows_n, int), np.full(rows_n, T - 1), {}
    live = [i for i in range(rows_n) if ctx.last_change[i] > 0]
    while live:
        grids = {i: np.unique((10 ** np.linspace(np.log10(start[i]), np.log10(end[i]), min(10, T)))
                              .round().astype(int)) for i in live}
        wanted = sorted({(i, s) for i in live for s in grids[i] if s < T - 1} - cache.keys())
        if wanted:
            rows, starts = np.array(wanted).T
            cache.update(zip(wanted, ctx.inefficiency(rows, starts, include_last_lag=True)))
        for i in list(live):
            grid = grids[i]
            g_grid = np.array([cache.get((i, s), 1.0) for s in grid])
            neff_grid = np.where(grid < T - 1, (T - grid + 1) / g_grid, 1.0)
            k = int(np.argmax(neff_grid))
            t0[i], g[i], n_eff[i] = grid[k], g_grid[k], neff_grid[k]
            if end[i] - start[i] < 4:
                live.remove(i)
            else:
                lo = min(max(k - 1, 0), grid.size - 2)  # neighbours of k, or the end pair
                start[i], end[i] = grid[lo], grid[lo + 2 if 0 < k < grid.size - 1 else lo + 1]
        if groups is not None and live:
            at_least = t0.copy()
            at_least[live] = start[live]
            lower = np.full(groups.max() + 1, -1)
            np.maximum.at(lower, groups, at_least)
            live = [i for i in live if end[i] >= lower[groups[i]]]
    return t0, g, n_eff


def _exhaustive_rows(x, ctx, rows_per_block=4):
    """Exact argmax over all t0 < T-1 of pymbar's float32 N_eff(t0) (``fast=False``).

    Lag k is processed for all suffixes s at once, O(1) per (s, k):
    r_s(k) = W_k - P_k(s) + m_s (X_{s+k} - X_{T-k} - k m_s), with P_k(s) = sum_{i<s}
    y_i y_{i+k} a running sum.  A suffix stops at its truncation lag, or is pruned
    once its partial g (a lower bound for k >= MINTIME: later terms are positive)
    proves N_eff(s) below the best found; the best is seeded by the binary search.
    Cost sum_s (lags until stop or prune): typically O(T tau), worst case O(T^2).
    """
    rows_n, T = x.shape
    s = np.arange(T - 1)
    mean = (ctx.cumsum[:, T:] - ctx.cumsum[:, :-2]) / (T - s)
    r0 = np.cumsum((ctx.y**2)[:, ::-1], axis=1)[:, :0:-1] - (T - s) * mean**2
    seeds = np.minimum(np.stack([np.zeros(rows_n, int), _binary_search_rows(x, ctx)[0]], 1).ravel(), T - 2)
    seed_g = ctx.inefficiency(np.repeat(np.arange(rows_n), 2), seeds, include_last_lag=False)
    best = (np.float32(T - seeds + 1) / np.float32(seed_g)).reshape(rows_n, 2).max(axis=1)
    results = np.zeros((3, rows_n))
    for first in range(0, rows_n, rows_per_block):
        b = slice(first, first + rows_per_block)
        results[:, b] = _exhaustive_block(ctx.y[b], ctx.cumsum[b], ctx.whole[b], mean[b], r0[b],
                                          s >= ctx.last_change[b, None], best[b])
    return results[0].astype(int), results[1], results[2]


def _exhaustive_block(y, X, whole, mean, r0, constant, best):
    """Lag loop of ``_exhaustive_rows`` for a few rows, so the working set stays in cache."""
    rows_n, T = y.shape
    n_plus_one = T - np.arange(T - 1) + 1.0
    g32 = np.where(constant, n_plus_one, 1.0).astype(np.float32)  # pymbar: zero variance
    neff32 = np.where(constant, 1.0, -np.inf).astype(np.float32)  # gives g = T - t + 1
    active = ~constant
    neff32[active[:, -1], -1], active[:, -1] = 3.0, False  # length-2 suffix: no lag, g = 1
    partial, prefix, r, work = (np.zeros((rows_n, T - 1)) for _ in range(4))
    level, flags = np.empty((rows_n, T - 1)), np.empty((rows_n, T - 1), bool)

    def set_level(i):  # prune s once partial > level, i.e. N_eff(s) < best (with margin)
        need_g = n_plus_one / (float(best[i]) * (1 - _PRUNE_MARGIN))
        level[i] = np.where(need_g > 1, (need_g - 1) * r0[i] / 2, -np.inf)

    def finish(i, j):
        g = np.maximum(1.0, 1.0 + 2.0 * partial[i, j] / r0[i, j])
        g32[i, j], active[i, j] = g, False
        neff32[i, j] = np.float32(n_plus_one[j]) / g32[i, j]
        for row in np.unique(i[neff32[i, j] > best[i]]):
            best[row] = neff32[row].max()
            set_level(row)

    for row in range(rows_n):
        set_level(row)
    hi = T - 1  # suffixes s >= hi are finished or pruned
    for k in range(1, T - 1):
        if k % 8 == 1:
            live = active[:, :hi].any(axis=0)
            if not live.any():
                break
            hi -= int(np.argmax(live[::-1]))
        hi = min(hi, T - 1 - k)
        np.multiply(y[:, : hi - 1], y[:, k: k + hi - 1], out=work[:, : hi - 1])
        np.cumsum(work[:, : hi - 1], axis=1, out=prefix[:, 1:hi])
        np.subtract(whole[:, k: k + 1], prefix[:, :hi], out=r[:, :hi])
        shift = np.subtract(X[:, k: k + hi], X[:, T - k: T - k + 1], out=work[:, :hi])
        shift -= k * mean[:, :hi]
        shift *= mean[:, :hi]
        r[:, :hi] += shift
        if k > MINTIME:
            np.less_equal(r[:, :hi], 0.0, out=flags[:, :hi])
            flags[:, :hi] &= active[:, :hi]
            if flags[:, :hi].any():
                finish(*np.nonzero(flags[:, :hi]))
        partial[:, :hi] += r[:, :hi]
        if T - 2 - k < hi:  # the suffix of length k + 2 has summed its last lag
            last = np.flatnonzero(active[:, T - 2 - k])
            finish(last, np.full(last.size, T - 2 - k))
        if k >= MINTIME:
            np.less_equal(partial[:, :hi], level[:, :hi], out=flags[:, :hi])
            active[:, :hi] &= flags[:, :hi]
    t0 = np.argmax(neff32, axis=1)  # first maximum, as numpy's argmax in pymbar
    pick = (np.arange(rows_n), t0)
    return t0, g32[pick], neff32[pick]


def _detect_rows(x, method, groups=None):
    rows_n, T = x.shape
    t0, g, n_eff = np.zeros(rows_n, int), np.full(rows_n, np.nan), np.full(rows_n, np.nan)
    finite = np.isfinite(x).all(axis=1)
    constant = finite & (x.max(axis=1) == x.min(axis=1))
    g[constant], n_eff[constant] = 1.0, (1.0 if method == "exhaustive" else T)
    todo = np.flatnonzero(finite & ~constant)
    for sel in np.array_split(todo, max(1, -(-todo.size * T // _BLOCK_ELEMENTS))):
        if sel.size == 0:
            continue
        if method == "exhaustive":
            t0[sel], g[sel], n_eff[sel] = _exhaustive_rows(x[sel], _Suffixes(x[sel]))
        else:
            part = None if groups is None else groups[sel]
            t0[sel], g[sel], n_eff[sel] = _binary_search_rows(x[sel], _Suffixes(x[sel]), part)
    return t0, g, n_eff


def latest_equilibration(x, groups) -> np.ndarray:
    """Each group's largest t0 of ``detect_equilibration(..., method="binary")``, for less work.

    x (rows, T) NumPy array of series, groups (rows,) int labels 0..G-1. Returns (G,) int: the
    largest t0 among the rows of each group (-1 for a group with no row). Exactly the maxima of the
    binary search's t0, without finishing the search of rows that provably cannot hold one (an
    equilibrated rule's window starts at its point's latest t0 and needs no other)."""
    x, groups = np.asarray(x, float), np.asarray(groups, int)
    with np.errstate(invalid="ignore", divide="ignore"):
        t0 = _detect_rows(x, "binary", groups)[0]
    latest = np.full(int(groups.max()) + 1 if groups.size else 0, -1)
    np.maximum.at(latest, groups, t0)
    return latest


def detect_equilibration(da, dim="step", method="exhaustive"):
    """Start t0 of the equilibrated region, maximizing N_eff(t0) = (T - t0 + 1)/g(t0).

    Chodera, J. Chem. Theory Comput. 12, 1799 (2016); g(t0) is the statistical
    inefficiency of x[t0:].  ``"exhaustive"`` scans all t0 < T-1 and equals
    ``pymbar.timeseries.detect_equilibration(x, fast=False)`` (g and N_eff rounded to
    float32 as pymbar stores them; first maximum wins); cost in ``_exhaustive_rows``.
    ``"binary"`` equals ``detect_equilibration_binary_search`` (a local maximum on
    log-spaced nodes, never t0 = 0), about 50 FFT segments per series.

    Parameters: da (float; ``dim`` >= 3 steps; other dims broadcast), dim (str),
    method ("exhaustive" | "binary").
    Returns a Dataset: ``t0`` (int64, number of discarded steps = index of the first
    kept step), ``g`` and ``n_eff`` (units "1").  A constant series gives t0 = 0, g = 1,
    n_eff = 1 (exhaustive) or T (binary), as pymbar; a series with NaN gives t0 = 0, NaN.
    """
    if method not in ("exhaustive", "binary"):
        raise ValueError(f"detect_equilibration: method must be 'exhaustive' or 'binary', got {method!r}")
    _check(da, "detect_equilibration", [dim], [3])
    t0, g, n_eff = _apply(lambda x: _detect_rows(x, method), da, [dim], (np.int64, float, float))
    t0.attrs.update(units="1", long_name=f"number of discarded {dim}s (index of the first kept one)")
    return xr.Dataset(
        {"t0": t0.rename("t0"), "g": _dimensionless(g, "g", "statistical inefficiency of x[t0:]"),
         "n_eff": _dimensionless(n_eff, "n_eff", "effective sample size of x[t0:], (T - t0 + 1)/g")},
        attrs={"method": method, "reference": "Chodera, J. Chem. Theory Comput. 12, 1799 (2016)"})


# ------------------------------------------------------------------- R-hat and ESS
def _split_chains(x):
    """(..., chains, T) -> (..., 2 chains, T // 2): first and last halves (odd T drops the middle)."""
    half = x.shape[-1] // 2
    return np.concatenate([x[..., :half], x[..., x.shape[-1] - half:]], axis=-2)


def _average_ranks(flat):
    """Ranks 1..S along the last axis, ties averaged: ``scipy.stats.rankdata(method="average")``, value for value.

    One argsort per row (the order among equal values does not matter: each tie group gets
    (first + last + 2) / 2, exact in float64), 3x faster than scipy's on discrete records.
    """
    out = np.empty(flat.shape)
    for index in np.ndindex(flat.shape[:-1]):
        row = flat[index]
        order = np.argsort(row)
        ordered = row[order]
        first = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
        end = np.append(first[1:], row.size)
        out[index + (order,)] = np.repeat((first + end + 1) / 2, end - first)
    return out


def _rank_normalize(x):
    """z = Phi^-1((rank - 3/8) / (S - 2 3/8 + 1)), ranks (ties averaged) over all S draws."""
    flat = x.reshape(x.shape[:-2] + (-1,))
    ranks = _average_ranks(flat)
    return scipy.special.ndtri((ranks - 3 / 8) / (flat.shape[-1] - 2 * (3 / 8) + 1)).reshape(x.shape)


def _split_rhat(z):
    """sqrt((B/W + n - 1)/n), B = n var(chain means), W = mean within-chain variance."""
    n = z.shape[-1]
    between = n * np.var(z.mean(axis=-1), axis=-1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt((between / np.var(z, axis=-1, ddof=1).mean(axis=-1) + n - 1) / n)


def _folded_rhat(split):
    median = np.median(split.reshape(len(split), -1), axis=-1)[:, None, None]
    return _split_rhat(_rank_normalize(np.abs(split - median)))


def _rank_rhat_rows(x):
    split = _split_chains(x)
    bulk, tail = _split_rhat(_rank_normalize(split)), _folded_rhat(split)
    return np.where(tail > bulk, tail, bulk)  # Python's max(bulk, tail), as ArviZ


def _mixed_rows(x, rhat_max, min_ess):
    """1.0 where ``rhat`` < rhat_max and bulk ``ess`` >= min_ess, else 0.0, for (1, chains, steps) rows.

    The same arithmetic as the two functions, so the same answer, with less work: the folded
    R-hat only where the bulk one passes, the ESS only where R-hat passes, and the bulk rank
    normalization shared by R-hat and ESS.
    """
    split = _split_chains(x)
    z = _rank_normalize(split)
    bulk = _split_rhat(z)
    if not bulk[0] < rhat_max:
        return np.zeros(1)
    tail = _folded_rhat(split)
    if not np.where(tail > bulk, tail, bulk)[0] < rhat_max:
        return np.zeros(1)
    return np.ones(1) if _geyer_ess(z)[0] >= min_ess else np.zeros(1)


def _geyer_ess(x):
    """ESS of (rows, chains, n) draws, Geyer's initial monotone sequence (Vehtari 2021, eq. 10-11).

    rho_t = 1 - (W - mean_chains acov_t)/var+; pair sums P_j = rho_2j + rho_2j+1 are
    kept while positive and made monotone (running minimum); tau = -1 + 2 sum P_j plus
    the next even rho when positive; ESS = S / max(tau, 1/log10 S), S = chains n.
    """
    chains, n = x.shape[-2:]
    acov = _lag_products(x - x.mean(axis=-1, keepdims=True)) / n
    mean_var = acov[..., 0].mean(axis=-1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n + np.var(x.mean(axis=-1), axis=-1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (mean_var[:, None] - acov.mean(axis=-2)) / var_plus[:, None]
    rho[:, 0] = 1.0
    pairs = rho[:, 0: 2 * (n // 2): 2] + rho[:, 1: 2 * (n // 2): 2]
    nonpositive = pairs <= 0
    first_nonpositive = np.where(nonpositive.any(axis=-1), np.argmax(nonpositive, axis=-1), n)
    n_pairs = np.minimum(max(0, (n - 3) // 2), first_nonpositive)[:, None]  # pairs summed
    summed = np.where(np.arange(pairs.shape[-1]) < n_pairs, np.minimum.accumulate(pairs, axis=-1), 0.0)
    next_even = np.take_along_axis(rho, 2 * n_pairs, axis=-1)[:, 0]
    kept = (n_pairs[:, 0] == 0) | (np.take_along_axis(pairs, n_pairs, axis=-1)[:, 0] >= 0) | (next_even > 0)
    tau = np.maximum(-1.0 + 2.0 * summed.sum(axis=-1) + np.where(kept, next_even, 0.0),
                     1.0 / np.log10(chains * n))
    flat = x.reshape(len(x), -1)
    constant = (flat.max(axis=-1) - flat.min(axis=-1)) < np.finfo(float).resolution
    return np.where(constant, chains * n, chains * n / tau)


def _type7_quantile(x, prob):
    """R's type-7 quantile of all draws per row, in the arithmetic of scipy's mquantiles."""
    flat = np.sort(x.reshape(len(x), -1), axis=-1)
    aleph = flat.shape[-1] * prob + (1.0 - prob)
    k = int(np.floor(np.clip(aleph, 1, flat.shape[-1] - 1)))
    gamma = np.clip(aleph - k, 0, 1)
    return (1.0 - gamma) * flat[:, k - 1] + gamma * flat[:, k]


def _ess_rows(x, method):
    if method == "bulk":
        return _geyer_ess(_rank_normalize(_split_chains(x)))
    low, high = (_geyer_ess(_split_chains((x <= _type7_quantile(x, p)[:, None, None]).astype(float)))
                 for p in (0.05, 0.95))
    return np.where(high < low, high, low)  # Python's min(low, high), as ArviZ


def _on_chains(func, da, dim, chain_dim, name, min_chains):
    """Validate and apply ``func`` to (rows, chains, steps); chain_dim None means one chain."""
    core = [dim] if chain_dim is None else [chain_dim, dim]
    _check(da, name, core[::-1], [4, min_chains])
    return _apply(lambda x: func(x.reshape(len(x), -1, x.shape[-1])), da, core, (float,))


def rhat(da, dim="step", chain_dim="member"):
    """Rank-normalized split R-hat: the larger of bulk and folded (tail) split-R-hat.

    Chains are split in halves and rank-normalized jointly (z = Phi^-1((r - 3/8)/(S + 1/4)));
    R-hat = sqrt((B/W + n - 1)/n) of z and of the rank-normalized |x - median|
    (Vehtari et al., Bayesian Analysis 16(2):667, 2021).  Equals ``arviz.rhat(method="rank")``.

    Parameters: da (float; ``dim`` >= 4 steps, ``chain_dim`` >= 2 chains; other dims
    broadcast), dim, chain_dim (str).  Returns R-hat (units "1") without both dims.
    """
    if chain_dim is None:
        raise ValueError("rhat: chain_dim is required (R-hat compares at least 2 chains)")
    out = _on_chains(_rank_rhat_rows, da, dim, chain_dim, "rhat", 2)
    return _dimensionless(out, "rhat", "rank-normalized split R-hat")


def mixed(da, rhat_max, min_ess, dim="step", chain_dim="member") -> bool:
    """Whether ``rhat(da) < rhat_max`` and ``ess(da, method="bulk") >= min_ess``: the same answer,
    computed with less work (the equilibrated stop rule's test). ``da``: one series per chain,
    (``dim``, ``chain_dim``) only, >= 4 steps and >= 2 chains."""
    _check(da, "mixed", [dim, chain_dim], [4, 2])
    if set(da.dims) != {dim, chain_dim}:
        raise ValueError(f"mixed: expected dims {(dim, chain_dim)}, got {da.dims}")
    x = np.asarray(da.transpose(chain_dim, dim).values, dtype=float)[None]
    return bool(_mixed_rows(x, rhat_max, min_ess)[0])


def ess(da, dim="step", chain_dim="member", method="bulk"):
    """Bulk or tail effective sample size (Vehtari et al., Bayesian Analysis 16(2):667, 2021).

    "bulk": ESS of the rank-normalized split chains; "tail": the smaller ESS of the split
    indicators I(x <= q05), I(x <= q95) (type-7 quantiles of all draws).  ESS uses
    Geyer's initial monotone sequence (``_geyer_ess``).  Equals ``arviz.ess(method=...)``,
    tail with prob=(0.05, 0.95), relative=False.

    Parameters: da (float; ``dim`` >= 4 steps, optional ``chain_dim``; other dims
    broadcast), dim, chain_dim (str, or None for one chain), method ("bulk" | "tail").
    Returns the ESS (units "1", a number of draws) without ``dim`` and ``chain_dim``.
    """
    if method not in ("bulk", "tail"):
        raise ValueError(f"ess: method must be 'bulk' or 'tail', got {method!r}")
    out = _on_chains(lambda x: _ess_rows(x, method), da, dim, chain_dim, "ess", 1)
    return _dimensionless(out, f"ess_{method}", f"{method} effective sample size")
