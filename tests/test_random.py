"""Philox4x32-10 streams: known answers, NumPy == torch bit for bit, statistics, keys and errors."""
import math

import numpy as np
import pytest
import scipy.stats

from eqflow import random as philox
from eqflow.random import INITIAL
from eqflow.random import gaussian as exact_math
from eqflow.random import philox as core

torch = pytest.importorskip("torch")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# Random123 known-answer vectors, tests/kat_vectors of github.com/DEShawResearch/random123
# (commit 9545ff64, lines 24-29): rounds, counter (4 words), key (2 words), expected (4 words).
KAT = [
    (10, (0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (10, (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (10, (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    (7, (0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x5F6FB709, 0x0D893F64, 0x4F121F81, 0x4F730A48)),
    (7, (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x5207DDC2, 0x45165E59, 0x4D8EE751, 0x8C52F662)),
    (7, (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0x4DFCCABA, 0x190A87F0, 0xC47362BA, 0xB6B5242A)),
]

ALL_DRAWS = [
    philox.uniform("y", "x"), philox.uniform("y", 3, dtype="float32"), philox.normal(5, "x"),
    philox.normal("x", dtype="float32"), philox.integers(7, "y", "x"), philox.integers("x", 11),
    philox.permutation("x"), philox.permutation(1), philox.bits("x", 2), philox.uniform(), philox.normal(0),
]


def keys_for(seed=7, members=3, temperatures=(1.5, 2.0)):
    ids = philox.point_ids({"T": np.array(temperatures)}, (len(temperatures),))
    return philox.cell_keys(seed, np.arange(members), ids)


def to_numpy(x):
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else x


# --------------------------------------------------------------------------------------------
# Philox4x32 itself
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rounds, counter, key, expected", KAT)
def test_known_answers_numpy(rounds, counter, key, expected):
    out = philox.philox4x32([np.array(c) for c in counter], [np.array(k) for k in key], rounds=rounds)
    assert [int(w) for w in out] == list(expected)
    assert all(w.dtype == np.int64 for w in out)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("rounds, counter, key, expected", KAT)
def test_known_answers_torch(rounds, counter, key, expected, device):
    out = philox.philox4x32([torch.tensor(c, device=device) for c in counter],
                            [torch.tensor(k, device=device) for k in key], rounds=rounds)
    assert [int(w) for w in out] == list(expected)
    assert all(w.dtype == torch.int64 and w.device.type == device for w in out)


def test_known_answers_broadcast_as_arrays():
    """All three 10-round vectors at once, as arrays, the key broadcast against the counter."""
    vectors = [v for v in KAT if v[0] == 10]
    counter = [np.array([v[1][i] for v in vectors]) for i in range(4)]
    key = [np.array([v[2][i] for v in vectors]) for i in range(2)]
    out = np.stack(philox.philox4x32(counter, key), axis=1)
    np.testing.assert_array_equal(out, [v[3] for v in vectors])
    zero_key = philox.philox4x32([np.zeros((2, 3), dtype=np.int64)] * 4, (0, 0))
    assert all(w.shape == (2, 3) and (w == w[0, 0]).all() for w in zero_key)


def test_torch_mulhilo_split_equals_uint64_product():
    """The 16-bit split of the torch path gives the exact hi and lo words, edge values included."""
    rng = np.random.default_rng(0)
    a = np.concatenate([[0, 1, 2**16 - 1, 2**16, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1],
                        rng.integers(0, 2**32, 10_000)]).astype(np.int64)
    ops = core.TorchOps(torch.zeros(1))
    for m in (core.M0, core.M1):
        lo = torch.from_numpy(a.copy())
        hi, spare = torch.empty(a.size, dtype=torch.int64), torch.empty(a.size, dtype=torch.int64)
        ops.mulhilo(lo, m, hi, spare)
        product = a.astype(np.uint64) * np.uint64(m)
        np.testing.assert_array_equal(hi.numpy(), (product >> np.uint64(32)).astype(np.int64))
        np.testing.assert_array_equal(lo.numpy(), (product & np.uint64(0xFFFFFFFF)).astype(np.int64))


# --------------------------------------------------------------------------------------------
# generate: the layout of words, and the derivations
# --------------------------------------------------------------------------------------------


def test_bits_are_philox_blocks_in_order():
    """Word j of a cell is word j % 4 of block j // 4, block b from (b, slot | domain << 16, step lo, step hi)."""
    keys = keys_for()
    step, slot, n = 2**35 + 17, 3, 10
    out = philox.generate(philox.bits(n), keys, step=step, slot=slot, sizes={}, domain=INITIAL)
    assert out.shape == (3, 2, n) and out.dtype == np.int64
    for m, p in [(0, 0), (2, 1)]:
        blocks = np.arange(3)
        words = philox.philox4x32((blocks, slot | INITIAL << 16, step & 0xFFFFFFFF, step >> 32), keys[:, m, p])
        np.testing.assert_array_equal(out[m, p], np.stack(words, axis=1).ravel()[:n])


def test_cell_keys_are_philox_of_member_and_point():
    ids = philox.point_ids({"T": np.array([1.5, 2.0])}, (2,))
    seed = 2**63 + 12345
    keys = philox.cell_keys(seed, [0, 5, 2**40], ids)
    assert keys.shape == (2, 3, 2) and keys.dtype == np.int64
    m, p = 2**40, int(ids[1])
    expected = philox.philox4x32((m & 0xFFFFFFFF, m >> 32, p & 0xFFFFFFFF, p >> 32),
                                 (seed & 0xFFFFFFFF, seed >> 32))
    assert [int(keys[0, 2, 1]), int(keys[1, 2, 1])] == [int(w) for w in expected[:2]]


def test_derivations_from_the_words():
    """uniform, float32 uniform, integers and permutation follow from the bits exactly as documented."""
    keys = keys_for()[:, :1, :1]
    kw = dict(step=4, slot=0, sizes={})
    w = philox.generate(philox.bits(64), keys, **kw)[0, 0].astype(object)  # Python ints
    a, b = w[0::2], w[1::2]
    u = philox.generate(philox.uniform(32), keys, **kw)[0, 0]
    np.testing.assert_array_equal(u, [((x >> 5) * 2**26 + (y >> 6)) * 2.0**-53 for x, y in zip(a, b)])
    u32 = philox.generate(philox.uniform(64, dtype="float32"), keys, **kw)[0, 0]
    assert u32.dtype == np.float32
    np.testing.assert_array_equal(u32, np.array([(x >> 8) * 2.0**-24 for x in w], dtype=np.float32))
    high = 2**30 - 3
    k = philox.generate(philox.integers(high, 32), keys, **kw)[0, 0]
    np.testing.assert_array_equal(k, [(high * (x * 2**32 + y)) >> 64 for x, y in zip(a, b)])
    perm = philox.generate(philox.permutation(32), keys, **kw)[0, 0]
    sort_keys = [(x << 30) | (y >> 2) for x, y in zip(a, b)]
    np.testing.assert_array_equal(perm, sorted(range(32), key=sort_keys.__getitem__))


def test_a_shorter_draw_is_a_prefix_and_float32_normals_are_rounded_float64():
    keys = keys_for()
    kw = dict(step=9, slot=2, sizes={})
    long = philox.generate(philox.normal(9), keys, **kw)
    np.testing.assert_array_equal(philox.generate(philox.normal(4), keys, **kw), long[..., :4])
    np.testing.assert_array_equal(philox.generate(philox.normal(9, dtype="float32"), keys, **kw),
                                  long.astype(np.float32))
    np.testing.assert_array_equal(philox.generate(philox.uniform(3), keys, **kw),
                                  philox.generate(philox.uniform(7), keys, **kw)[..., :3])


@pytest.mark.parametrize("draw", ALL_DRAWS, ids=repr)
def test_shapes_and_words(draw):
    sizes = {"y": 3, "x": 4}
    keys = keys_for()
    out = philox.generate(draw, keys, step=0, slot=0, sizes=sizes)
    assert out.shape == (3, 2, *draw.resolve(sizes))
    assert out.dtype == np.dtype(draw.dtype)
    n = math.prod(draw.resolve(sizes))
    per_value = {"bits": 1, "uniform": 1 if draw.dtype == "float32" else 2}.get(draw.kind, 2)
    expected_words = 4 * math.ceil(n / 2) if draw.kind == "normal" else per_value * n
    assert draw.words(sizes) == expected_words


# --------------------------------------------------------------------------------------------
# NumPy and torch agree bit for bit
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", [0, 1, 2**64 - 1])
def test_numpy_and_torch_identical(seed, device):
    rng = np.random.default_rng(seed % 1000)
    for draw in ALL_DRAWS:
        sizes = {"y": int(rng.integers(1, 5)), "x": int(rng.integers(1, 9))}
        members = int(rng.integers(1, 4))
        keys = keys_for(seed, members, tuple(rng.random(int(rng.integers(1, 4)))))
        step, slot = int(rng.integers(0, 2**64, dtype=np.uint64)), int(rng.integers(0, 2**16))
        domain = int(rng.integers(0, 2))
        expected = philox.generate(draw, keys, step=step, slot=slot, sizes=sizes, domain=domain)
        got = philox.generate(draw, torch.from_numpy(keys).to(device), step=step, slot=slot, sizes=sizes, domain=domain)
        assert got.device.type == device
        assert str(got.dtype) == f"torch.{draw.dtype}"
        np.testing.assert_array_equal(to_numpy(got), expected, err_msg=repr(draw))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_tiling_does_not_change_the_draws(backend, monkeypatch):
    """The CPU paths cut large requests into tiles; tiles of any size give the same numbers."""
    keys = keys_for(members=5)
    if backend == "torch":
        keys = torch.from_numpy(keys)
    draws = [philox.normal(37), philox.uniform(11, dtype="float32"), philox.permutation(9), philox.bits(3)]
    expected = [to_numpy(philox.generate(d, keys, step=1, slot=1, sizes={})) for d in draws]
    for tile in (1, 3, 8, 40):
        monkeypatch.setattr(core.NumpyOps, "tile", tile)
        monkeypatch.setattr(core.TorchOps, "cpu_tile", tile)
        for draw, want in zip(draws, expected):
            np.testing.assert_array_equal(to_numpy(philox.generate(draw, keys, step=1, slot=1, sizes={})), want)


# --------------------------------------------------------------------------------------------
# Statistics (bounds at the 1e-6 tails, or 6 standard deviations)
# --------------------------------------------------------------------------------------------

N = 10**6


def chi2_bounds(bins):
    """Acceptance interval of a chi-square statistic with bins - 1 degrees of freedom: its
    quantiles at 1e-6 and 1 - 1e-6 (for 100 bins [45.8, 180.8])."""
    df = bins - 1
    return scipy.stats.chi2.ppf(1e-6, df), scipy.stats.chi2.ppf(1 - 1e-6, df)


def chi2_uniform(counts):
    expected = counts.sum() / counts.size
    return ((counts - expected) ** 2 / expected).sum()


def one_cell(seed=3):
    return philox.cell_keys(seed, [0], np.zeros((), dtype=np.uint64))[:, 0]  # (2,): ensemble ()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_uniform_chi_square_and_lag1(dtype):
    u = philox.generate(philox.uniform(N, dtype=dtype), one_cell(), step=0, slot=0, sizes={})
    assert u.min() >= 0 and u.max() < 1
    low, high = chi2_bounds(100)
    assert low < chi2_uniform(np.bincount((u * 100).astype(np.int64), minlength=100)) < high
    r = np.corrcoef(u[:-1], u[1:])[0, 1]
    assert abs(r) < 6 / math.sqrt(N)
    assert abs(u.mean() - 0.5) < 6 * math.sqrt(1 / 12 / N)


def test_normal_moments_and_distribution():
    z = philox.generate(philox.normal(N), one_cell(), step=0, slot=0, sizes={})
    assert abs(z.mean()) < 6 / math.sqrt(N)  # sd of the mean: 1/sqrt(n)
    assert abs(z.var() - 1) < 6 * math.sqrt(2 / N)  # sd of the sample variance: sqrt(2/n)
    assert abs(scipy.stats.skew(z)) < 6 * math.sqrt(6 / N)
    assert abs(scipy.stats.kurtosis(z)) < 6 * math.sqrt(24 / N)
    # 100 equiprobable bins of the normal law; pairs (z0, z1) of one block are independent too
    low, high = chi2_bounds(100)
    counts = np.bincount(np.searchsorted(scipy.stats.norm.ppf(np.arange(1, 100) / 100), z), minlength=100)
    assert low < chi2_uniform(counts) < high
    assert abs(np.corrcoef(z[0::2], z[1::2])[0, 1]) < 6 / math.sqrt(N / 2)


@pytest.mark.parametrize("high", [7, 1000, 2**30 - 1])
def test_integers_histogram(high):
    k = philox.generate(philox.integers(high, N), one_cell(), step=0, slot=0, sizes={})
    assert k.min() >= 0 and k.max() < high
    bins = min(high, 100)
    counts = np.bincount(k * bins // high, minlength=bins)  # equal-width bins (exact when bins == high)
    if high % bins:  # unequal bins: compare with the exact expected counts
        edges = -(-np.arange(bins + 1) * high // bins)
        expected = np.diff(edges) / high * N
        stat = ((counts - expected) ** 2 / expected).sum()
    else:
        stat = chi2_uniform(counts)
    low, hi = chi2_bounds(bins)
    assert low < stat < hi


def test_permutations():
    cells, n = 50_000, 10
    keys = philox.cell_keys(5, np.arange(cells), np.zeros((), dtype=np.uint64))
    perms = philox.generate(philox.permutation(n), keys, step=0, slot=0, sizes={})
    assert perms.shape == (cells, n)
    np.testing.assert_array_equal(np.sort(perms, axis=1), np.broadcast_to(np.arange(n), (cells, n)))
    low, high = chi2_bounds(n)
    for position in (0, n - 1):
        assert low < chi2_uniform(np.bincount(perms[:, position], minlength=n)) < high


def test_neighbouring_streams_are_uncorrelated():
    """Members, points, steps, slots and domains next to each other: |r| < 6/sqrt(n), and no shared words."""
    n = 200_000
    ids = philox.point_ids({"T": np.array([2.0, 2.0 + 2**-51])}, (2,))  # neighbouring points
    keys = philox.cell_keys(11, [0, 1], ids)
    kw = dict(sizes={})
    base = philox.generate(philox.uniform(n), keys, step=10, slot=0, **kw)
    others = {
        "member": base[1, 0],
        "point": base[0, 1],
        "step": philox.generate(philox.uniform(n), keys, step=11, slot=0, **kw)[0, 0],
        "slot": philox.generate(philox.uniform(n), keys, step=10, slot=1, **kw)[0, 0],
        "domain": philox.generate(philox.uniform(n), keys, step=10, slot=0, domain=INITIAL, **kw)[0, 0],
        "seed": philox.generate(philox.uniform(n), philox.cell_keys(12, [0, 1], ids), step=10, slot=0, **kw)[0, 0],
    }
    for name, other in others.items():
        r = np.corrcoef(base[0, 0], other)[0, 1]
        assert abs(r) < 6 / math.sqrt(n), (name, r)
        assert np.intersect1d(base[0, 0], other).size < 5, name  # 53-bit values: chance collisions are ~1e-5


# --------------------------------------------------------------------------------------------
# The log and sincos of the normal transform
# --------------------------------------------------------------------------------------------


def ulps(value, reference):
    return np.abs(value - reference) / np.spacing(np.abs(reference))


def sample_points():
    """10**6 multiples of 2**-53 in [0, 1), plus the ends and the neighbourhoods of the quarters and octants."""
    rng = np.random.default_rng(42)
    near = np.arange(-2000, 2000)
    special = [np.arange(0, 4000), 2**53 - 1 - np.arange(4000)] + [2**50 * k + near for k in range(1, 8)]
    k = np.concatenate([rng.integers(0, 2**53, N)] + special)
    return k * 2.0**-53


def test_log_within_2_ulp_of_numpy():
    """log(1 - u) for u in [0, 1): within 2 ulp of np.log (0 exactly at 1), near 0 and 1 included."""
    x = 1.0 - sample_points()
    got = exact_math.exact_log(core.NumpyOps(), x)
    want = np.log(x)
    assert (got[want == 0] == 0).all()
    assert ulps(got[want != 0], want[want != 0]).max() <= 2
    np.testing.assert_array_equal(exact_math.exact_log(core.TorchOps(torch.zeros(1)), torch.from_numpy(x)).numpy(), got)


def test_sincos_within_3_ulp_of_numpy():
    """cos and sin of 2 pi u within 3 ulp of np.cos/np.sin of the same angle reduced exactly.

    2 pi u itself is not a float: np.cos(2 * np.pi * u) carries the rounding of its argument
    (hundreds of ulp near the zeros of cos), so the reference is np.cos(pi/2 f) rotated by the
    quadrant q, with 4u = q + f exact. Against that unreduced form the absolute error is <= 8 * 2**-53.
    """
    u = sample_points()
    cos, sin = exact_math.sincos_2pi(core.NumpyOps(), u)
    q = np.floor(4 * u + 0.5)
    f = 4 * u - q
    cos_y, sin_y = np.cos(np.pi / 2 * f), np.sin(np.pi / 2 * f)
    quadrant = q.astype(np.int64) % 4
    want_cos = np.choose(quadrant, [cos_y, -sin_y, -cos_y, sin_y])
    want_sin = np.choose(quadrant, [sin_y, cos_y, -sin_y, -cos_y])
    for got, want in ((cos, want_cos), (sin, want_sin)):
        nonzero = want != 0
        assert (got[~nonzero] == 0).all()
        assert ulps(got[nonzero], want[nonzero]).max() <= 3
    assert np.abs(cos - np.cos(2 * np.pi * u)).max() <= 8 * 2.0**-53
    assert np.abs(sin - np.sin(2 * np.pi * u)).max() <= 8 * 2.0**-53
    cos_t, sin_t = exact_math.sincos_2pi(core.TorchOps(torch.zeros(1)), torch.from_numpy(u))
    np.testing.assert_array_equal(cos_t.numpy(), cos)
    np.testing.assert_array_equal(sin_t.numpy(), sin)


def test_sqrt_within_1_ulp_of_numpy():
    """The own sqrt (torch.sqrt is not correctly rounded on MKL CPUs): within 1 ulp, sqrt(0) = 0."""
    rng = np.random.default_rng(3)
    x = np.concatenate([-2 * np.log(1.0 - sample_points()), [0.0, 2.0**-1022, 1.0, 2.0, 74.0],
                        rng.random(10**5) * 2.0 ** rng.integers(-1000, 1000, 10**5)])
    got = exact_math.exact_sqrt(core.NumpyOps(), x)
    want = np.sqrt(x)
    assert got[0 == x].tolist() == [0.0] * int((x == 0).sum())
    assert ulps(got[x > 0], want[x > 0]).max() <= 1
    torch_ops = core.TorchOps(torch.zeros(1))
    np.testing.assert_array_equal(exact_math.exact_sqrt(torch_ops, torch.from_numpy(x)).numpy(), got)


@pytest.mark.parametrize("device", DEVICES)
def test_many_normals_identical_on_torch(device):
    """Large tensors take other code paths in torch (vector math libraries, threads): still identical."""
    keys = keys_for()
    expected = philox.generate(philox.normal(40_000), keys, step=3, slot=0, sizes={})
    got = philox.generate(philox.normal(40_000), torch.from_numpy(keys).to(device), step=3, slot=0, sizes={})
    np.testing.assert_array_equal(to_numpy(got), expected)


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 63, reason="needs an extended-precision long double")
def test_sincos_within_2_ulp_of_the_true_value():
    """Against an 80-bit long double reference of the exactly reduced angle: within 2 ulp."""
    u = sample_points()[::10]
    cos, sin = exact_math.sincos_2pi(core.NumpyOps(), u)
    ul = u.astype(np.longdouble)
    q = np.floor(4 * ul + 0.5)
    y = np.longdouble("1.570796326794896619231321691639751442") * (4 * ul - q)
    quadrant = q.astype(np.int64) % 4
    want_cos = np.choose(quadrant, [np.cos(y), -np.sin(y), -np.cos(y), np.sin(y)]).astype(np.float64)
    want_sin = np.choose(quadrant, [np.sin(y), np.cos(y), -np.sin(y), -np.cos(y)]).astype(np.float64)
    for got, want in ((cos, want_cos), (sin, want_sin)):
        assert ulps(got[want != 0], want[want != 0]).max() <= 2


# --------------------------------------------------------------------------------------------
# Point ids
# --------------------------------------------------------------------------------------------


def test_point_ids_depend_on_values_only():
    alone = philox.point_ids({"T": np.array([2.0])}, (1,))
    swept = philox.point_ids({"T": np.array([1.5, 2.0])}, (2,))
    assert alone.dtype == np.uint64 and alone[0] == swept[1] and swept[0] != swept[1]
    grid = philox.point_ids({"T": np.array([[1.0], [2.0]]), "h": np.array([[0.0, 0.5, -0.5]])}, (2, 3))
    assert grid.shape == (2, 3) and np.unique(grid).size == 6
    assert grid[1, 2] == philox.point_ids({"h": -0.5, "T": 2.0}, ())  # names sorted; scalars broadcast
    assert philox.point_ids({"h": -0.0}, ()) == philox.point_ids({"h": 0.0}, ())
    assert philox.point_ids({"h": 1.0}, ()) != philox.point_ids({"g": 1.0}, ())
    many = philox.point_ids({"T": np.linspace(0, 1, 10_001)}, (10_001,))
    assert np.unique(many).size == 10_001


# --------------------------------------------------------------------------------------------
# Errors name the argument, the expected and the actual value
# --------------------------------------------------------------------------------------------


NO_POINT = np.zeros(1, np.uint64)
INT32 = [torch.zeros(2, dtype=torch.int32)] * 4


def _generate(draw, **kw):
    args = dict(keys=keys_for(), step=0, slot=0, sizes={"y": 2})
    args.update(kw)
    return philox.generate(draw, **args)


@pytest.mark.parametrize("make, match", [
    (lambda: philox.Draw("gaussian", (3,)), r"kind: expected one of .*got 'gaussian'"),
    (lambda: philox.uniform(3, dtype="int64"), r"dtype: expected one of \['float64', 'float32'\].*got 'int64'"),
    (lambda: philox.Draw("bits", (3,), dtype="float64"), r"dtype: expected one of \['int64'\].*got 'float64'"),
    (lambda: philox.integers(0, 3), r"high: expected an integer in \[1, 2\*\*30\), got 0"),
    (lambda: philox.integers(2**30, 3), r"high: expected an integer in \[1, 2\*\*30\), got 1073741824"),
    (lambda: philox.uniform(-1), r"shape: expected an integer in \[0, 2\*\*63\), got -1"),
    (lambda: _generate(philox.uniform("x")), r"shape: unknown size name 'x', expected one of \['y'\]"),
    (lambda: _generate(philox.integers("n", 2)), r"high: unknown size name 'n'"),
    (lambda: _generate(philox.integers("y", 2), sizes={"y": 2**30}), r"high: expected an integer in \[1, 2"),
    (lambda: _generate(philox.uniform(2), step=-1), r"step: expected an integer in \[0, 2\*\*64\), got -1"),
    (lambda: _generate(philox.uniform(2), step=2**64), r"step: expected an integer in \[0, 2\*\*64\)"),
    (lambda: _generate(philox.uniform(2), slot=2**16), r"slot: expected an integer in \[0, 2\*\*16\), got 65536"),
    (lambda: _generate(philox.uniform(2), keys=np.zeros((3, 2))), r"keys: expected an int64 array of shape"),
    (lambda: _generate("uniform"), r"draw: expected a Draw"),
    (lambda: philox.cell_keys(-1, [0], NO_POINT), r"seed: expected an integer in \[0, 2\*\*64\), got -1"),
    (lambda: philox.cell_keys(2**64, [0], NO_POINT), r"seed: expected .* got 18446744073709551616"),
    (lambda: philox.cell_keys(1, [0, -2], NO_POINT), r"member_labels: expected integers >= 0, got \[-2\]"),
    (lambda: philox.cell_keys(1, [0.5], NO_POINT), r"member_labels: expected a 1-d array of integers"),
    (lambda: philox.philox4x32((0, 0, 0), (0, 0)), r"counter: expected 4 words, got 3"),
    (lambda: philox.philox4x32((0, 0, 0, 2**32), (0, 0)), r"counter\[3\]: expected integers in \[0, 2\*\*32\)"),
    (lambda: philox.philox4x32((0, 0, 0, 0), (0, -1)), r"key\[1\]: expected integers in \[0, 2\*\*32\)"),
    (lambda: philox.philox4x32(INT32, (0, 0)), r"counter\[0\]: expected an int64 tensor"),
    (lambda: philox.point_ids({"T": np.zeros(3)}, (2,)), r"parameters\['T'\]: expected a float64 array broadcastable"),
])
def test_errors_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()
