"""Try to break history stores, and count what survives.

    python benchmarks/audit_store.py --trials 10

Each scenario is repeated with a random moment (a seeded choice per trial): SIGKILL of a run
while it creates its layout, while it overwrites an old store, while it runs, while it trims
its step dims after an early stop; two writers on one store at once; and damage of every class
the store's commit record covers: a flipped byte, a deleted chunk, a stale checkpoint chunk
(the other slot's), two swapped record chunks, an edited, deleted or truncated array
metadata document, a dropped consolidated entry, a damaged coordinate or constant chunk, an
edited root attribute (slot, steps done), a deleted or edited commit manifest, and a corrupted
root metadata file. After each event the store is checked:

- readable: ``eq.open`` gives the old or the new history, or there is nothing at the path, or it
  refuses with a named StoreError; never a raw exception and never wrong data;
- resumable: the follow-up (``resume=True`` where a store is left, a fresh run otherwise;
  for damage, the rerun with ``overwrite=True`` that the error advises) completes;
- identical: the history then equals an uninterrupted run bit for bit (for an overwrite killed
  before the new layout was in place: the old store, untouched);
- named error: the damage or the second writer was reported by a StoreError naming the store;
- for damage also: silently wrong (``eq.open`` or ``eq.final_state`` returned data that differ
  from what was written, with no error) and verify passed (``eq.verify`` said a damaged store
  is whole). Both must be 0.

Prints a Markdown table per kind of event.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import xarray as xr

import eqflow as eq

SYSTEM = dict(size=12, temperature=[1.5, 2.5], members=4, seed=5)
RUN = dict(steps=60, record={"energy": 1, "magnetization": 1, "spin": 20}, segment=5, progress=False)

CHILD = textwrap.dedent("""
    import json, os, signal, sys, random
    import eqflow as eq
    from eqflow.store import atomic
    import zarr
    args = json.loads(sys.argv[1])
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    count = {"arrays": 0, "resizes": 0}
    if args["hook"] == "layout":  # die while creating the k-th array of the layout
        real = zarr.Group.create_array
        def create_array(self, *a, **k):
            count["arrays"] += 1
            if count["arrays"] == args["at"]:
                die()
            return real(self, *a, **k)
        zarr.Group.create_array = create_array
    if args["hook"] == "swap":  # die after the new layout is in place, before the old one is deleted
        real_rmtree = atomic.shutil.rmtree
        def rmtree(path, *a, **k):
            if ".eqflow-old" in str(path) or ".eqflow-new" in str(path):
                die()
            real_rmtree(path, *a, **k)
        atomic.shutil.rmtree = rmtree
    if args["hook"] == "trim":  # die while cutting the k-th step array after an early stop
        real_resize = zarr.Array.resize
        def resize(self, *a, **k):
            count["resizes"] += 1
            if count["resizes"] == args["at"]:
                die()
            return real_resize(self, *a, **k)
        zarr.Array.resize = resize
    print("ready", flush=True)
    system = eq.create("ising", **args["system"])
    stop = eq.stop.converged("energy", 1e9) if args.get("early") else None  # every member stops at once
    try:
        eq.run(system, "metropolis", store=args["store"], stop=stop, **args["run"], **args.get("flags", {}))
    except eq.StoreError as exc:
        print("StoreError:", exc, flush=True)
        sys.exit(3)
""")


def child(args: dict, kill_after: float | None = None) -> tuple[int, str]:
    """Run CHILD with ``args``; SIGKILL it ``kill_after`` seconds after it is ready (None: let it finish)."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if kill_after is not None:
        proc.stdout.readline()  # "ready": imports done
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out or ""


def reference(folder: Path, name: str, **extra) -> xr.Dataset:
    if (folder / name).exists():
        return eq.open(folder / name).load()
    system = eq.create("ising", **{**SYSTEM, **extra.pop("system", {})})
    return eq.run(system, "metropolis", store=folder / name, **{**RUN, **extra}).load()


def same(a: xr.Dataset, b: xr.Dataset) -> bool:
    try:
        xr.testing.assert_equal(a.load(), b.load())
        return True
    except AssertionError:
        return False


def check_open(path: Path):
    """('nothing' | 'named' | 'raw', history or None)."""
    if not path.exists():
        return "nothing", None
    try:
        return "ok", eq.open(path).load()
    except eq.StoreError:
        return "named", None
    except Exception as exc:  # noqa: BLE001 (the audit counts these)
        return f"raw {type(exc).__name__}", None


def follow_up(path: Path, early: bool = False) -> xr.Dataset | None:
    system = eq.create("ising", **SYSTEM)
    stop = eq.stop.converged("energy", 1e9) if early else None
    try:
        return eq.run(system, "metropolis", store=path, stop=stop, resume=path.exists(), **RUN).load()
    except eq.StoreError:  # an unfinished layout or a damaged store: the named way out is overwrite
        try:
            return eq.run(system, "metropolis", store=path, stop=stop, overwrite=True, **RUN).load()
        except Exception:  # noqa: BLE001
            return None
    except Exception:  # noqa: BLE001
        return None


def rerun(path: Path) -> xr.Dataset | None:
    try:
        return eq.run(eq.create("ising", **SYSTEM), "metropolis", store=path, overwrite=True, **RUN).load()
    except Exception:  # noqa: BLE001
        return None


def kill_scenario(folder, rng, trials, hook, duration, old=False, early=False):
    counts = dict(readable=0, resumable=0, identical=0, named=0)
    ref = reference(folder, f"ref-{hook}-{early}.zarr", **({"stop": eq.stop.converged("energy", 1e9)} if early else {}))
    old_ref = reference(folder, "old-ref.zarr", steps=20, system={"seed": 99}) if old else None
    for t in range(trials):
        path = folder / f"{hook}-{old}-{early}-{t}.zarr"
        if old:
            shutil.copytree(folder / "old-ref.zarr", path)
        args = dict(system=SYSTEM, run=RUN, store=str(path), hook=hook, early=early,
                    at=rng.randint(1, 12 if hook == "layout" else 6), flags={"overwrite": True} if old else {})
        delay = rng.uniform(0, duration) if hook == "time" else None
        child(args, kill_after=delay)
        state, hist = check_open(path)
        if state in ("ok", "nothing", "named"):
            counts["readable"] += 1
        counts["named"] += state == "named"
        if old and hist is not None and same(hist, old_ref):  # the old store, untouched
            counts["resumable"] += 1
            counts["identical"] += 1
            continue
        final = follow_up(path, early)
        counts["resumable"] += final is not None
        counts["identical"] += final is not None and same(final, ref)
    return counts


def concurrent_scenario(folder, rng, trials):
    counts = dict(readable=0, resumable=0, identical=0, named=0)
    ref = reference(folder, "ref-concurrent.zarr")
    for t in range(trials):
        path = folder / f"concurrent-{t}.zarr"
        args = dict(system=SYSTEM, run=RUN, store=str(path), hook="none")
        procs = [subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        outs = [(p.communicate(timeout=600)[0], p.returncode) for p in procs]
        state, hist = check_open(path)
        counts["readable"] += state == "ok"
        counts["resumable"] += sum(rc == 0 for _, rc in outs) >= 1
        counts["identical"] += hist is not None and same(hist, ref)
        counts["named"] += sum(rc == 3 and "StoreError" in out for out, rc in outs) == 1  # exactly one loser
    return counts


def _chunks(path: Path, under: str = "") -> list[Path]:
    base = path / under if under else path
    return sorted(p for p in base.rglob("*") if p.is_file() and "c" in p.relative_to(path).parts
                  and not p.relative_to(path).parts[0].startswith("_eqflow"))


def _flip_or_delete(target: Path, rng, delete: bool) -> None:
    if delete:
        target.unlink()
        return
    data = bytearray(target.read_bytes())
    data[rng.randrange(len(data))] ^= 0xFF
    target.write_bytes(bytes(data))


def _root_metadata(path, rng, top):
    target = path / "zarr.json"
    target.write_bytes(target.read_bytes()[: rng.randint(0, 200)] + b"\x00garbage")


def _stale_checkpoint(path, rng, top):  # the other slot's chunk over the current one's, where they differ
    slot = top["attributes"]["eqflow_checkpoint_slot"]
    names = sorted(p.name for p in (path / "_checkpoint").iterdir() if p.is_dir())
    rng.shuffle(names)
    for name in names:  # outcomes that did not change between the slots would make no damage
        old = _chunks(path, f"_checkpoint/{name}/c/{1 - slot}")[0]
        new = _chunks(path, f"_checkpoint/{name}/c/{slot}")[0]
        if old.read_bytes() != new.read_bytes():
            shutil.copyfile(old, new)
            return


def _swapped(path, rng, top):
    a, b = rng.sample(_chunks(path, "energy"), 2)
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


def _array_metadata(path, rng, top):
    meta = path / rng.choice(["energy", "magnetization", "spin", "step", "_checkpoint/spin", "coupling"]) / "zarr.json"
    document = json.loads(meta.read_text())
    edit = rng.choice(["deleted", "garbage", "truncated", "shape", "dtype"])
    if edit == "deleted":
        meta.unlink()
    elif edit in ("garbage", "truncated"):
        meta.write_bytes(b"\x00garbage" if edit == "garbage" else meta.read_bytes()[: rng.randint(1, 60)])
    else:  # a shape one shorter (a 0-d array has none to cut: its dtype changes instead)
        shape = document["shape"]
        document.update({"shape": [max(1, n - 1) for n in shape[:1]] + shape[1:]} if edit == "shape" and shape
                        else {"data_type": "float32" if document["data_type"] != "float32" else "float64"})
        meta.write_text(json.dumps(document))


def _dropped_entry(path, rng, top):
    entries = top["consolidated_metadata"]["metadata"]
    del entries[rng.choice(sorted(k for k in entries if "/" not in k or k.startswith("_checkpoint/")))]
    (path / "zarr.json").write_text(json.dumps(top))


def _coordinate(path, rng, top):
    coordinates = ("coupling", "field", "temperature", "member", "step", "step_20")
    target = rng.choice([p for p in _chunks(path) if p.relative_to(path).parts[0] in coordinates])
    _flip_or_delete(target, rng, rng.random() < 0.5)


def _root_attribute(path, rng, top):
    attrs = top["attributes"]
    key = rng.choice(["eqflow_checkpoint_slot", "eqflow_steps_done"])
    attrs[key] = 1 - attrs[key] if key == "eqflow_checkpoint_slot" else attrs[key] - 5
    (path / "zarr.json").write_text(json.dumps(top))


def _manifest(path, rng, top):
    target = rng.choice([p / "zarr.json" for p in sorted((path / "_eqflow" / "commits").iterdir()) if p.is_dir()])
    if rng.random() < 0.5:
        target.unlink()
        return
    body = json.loads(target.read_text())
    body["attributes"]["eqflow_manifest"]["steps_done"] = -1
    target.write_text(json.dumps(body))


DAMAGE = {
    "flipped byte": lambda path, rng, top: _flip_or_delete(rng.choice(_chunks(path)), rng, False),
    "deleted chunk": lambda path, rng, top: _flip_or_delete(rng.choice(_chunks(path)), rng, True),
    "stale checkpoint chunk": _stale_checkpoint,
    "swapped record chunks": _swapped,
    "array metadata": _array_metadata,
    "dropped consolidated entry": _dropped_entry,
    "coordinate chunk": _coordinate,
    "root attribute": _root_attribute,
    "commit manifest": _manifest,
    "root metadata": _root_metadata,
}


def damage(path: Path, rng, how: str) -> None:
    """Damage the store at ``path`` in one way of class ``how`` (a seeded random choice within it)."""
    DAMAGE[how](path, rng, json.loads((path / "zarr.json").read_text()))


def damage_scenario(folder, rng, trials, how):
    counts = dict(readable=0, resumable=0, identical=0, named=0, wrong=0, passed=0)
    ref = reference(folder, "ref-damage.zarr")
    ref_state = eq.final_state(folder / "ref-damage.zarr")
    for t in range(trials):
        path = folder / f"{how}-{t}.zarr"
        shutil.copytree(folder / "ref-damage.zarr", path)
        damage(path, rng, how)
        try:
            eq.verify(path)
            verdict = "passed"
        except eq.StoreError:
            verdict = "named"
        except Exception as exc:  # noqa: BLE001
            verdict = f"raw {type(exc).__name__}"
        state, hist = check_open(path)
        wrong = hist is not None and not same(hist, ref)
        try:
            chained = eq.final_state(path)
            wrong = wrong or not same(chained, ref_state)
        except eq.StoreError:
            pass
        except Exception:  # noqa: BLE001 (a raw error is not a silent answer, but not readable either)
            state = "raw"
        counts["readable"] += state in ("named", "ok") and not wrong
        counts["named"] += verdict == "named"
        counts["wrong"] += wrong
        counts["passed"] += verdict == "passed"
        final = rerun(path)  # what the named error advises
        counts["resumable"] += final is not None
        counts["identical"] += final is not None and same(final, ref)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--damage-only", action="store_true", help="only the damage classes (no kills)")
    parser.add_argument("--only", nargs="*", default=None, help="only these damage classes")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="eqflow-audit-"))
    started = time.perf_counter()
    reference(folder, "timing.zarr")
    duration = time.perf_counter() - started  # one uninterrupted run, imports excluded
    rows = {} if args.damage_only else {
        "kill during layout creation": kill_scenario(folder, rng, args.trials, "layout", duration),
        "kill during overwrite (layout)": kill_scenario(folder, rng, args.trials, "layout", duration, old=True),
        "kill during overwrite (after the swap)": kill_scenario(folder, rng, args.trials, "swap", duration, old=True),
        "kill during overwrite (random moment)": kill_scenario(folder, rng, args.trials, "time", duration, old=True),
        "kill during run (random moment)": kill_scenario(folder, rng, args.trials, "time", duration),
        "kill during trim (early stop)": kill_scenario(folder, rng, args.trials, "trim", duration, early=True),
        "two writers at once": concurrent_scenario(folder, rng, args.trials),
    }
    damaged = {how: damage_scenario(folder, rng, args.trials, how) for how in (args.only or DAMAGE)}
    print(f"one run: {duration:.2f} s; store folder removed afterwards; numpy {np.__version__}, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} cores\n")
    print("| scenario | trials | readable | resumable | identical | named error |")
    print("|---|---|---|---|---|---|")
    for name, c in rows.items():
        print(f"| {name} | {args.trials} | {c['readable']} | {c['resumable']} | {c['identical']} | {c['named']} |")
    print("\n| damage | trials | named by verify | verify passed | silently wrong | readable | rerun identical |")
    print("|---|---|---|---|---|---|---|")
    for name, c in damaged.items():
        print(f"| {name} | {args.trials} | {c['named']} | {c['passed']} | {c['wrong']} | {c['readable']} | "
              f"{c['identical']} |")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
