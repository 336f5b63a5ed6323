"""Icechunk (transactional Zarr) as a store engine, against eqflow's plain-Zarr design.

    python benchmarks/bench_icechunk.py --segments 40 --repeat 3 --kills 10

Both engines write the same history, segment by segment, with the same arrays, chunks and
codecs as an eqflow store: per segment the energy of every member for each step, the spins at
the segment's end, the checkpoint slot (the full state) and then the marker (steps done):

- plain Zarr: region writes, then one root-attribute write (eqflow's design: the marker is the
  commit; a crash leaves everything up to the last marker);
- icechunk: the same writes in a writable session, then ``session.commit`` (one commit per
  segment; a crash leaves the last commit).

Prints the time per segment of each (median and range over ``--repeat`` runs, side by side) and,
for ``--kills`` trials each, what a SIGKILL at a random moment leaves: the last complete
segment readable, with every record up to it present (consistent), or not.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ENGINE = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import zarr
    from zarr.codecs import Crc32cCodec, ZstdCodec

    MEMBERS, L, STEPS_PER_SEGMENT = 16, 64, 10

    def layout(store, segments):
        group = zarr.open_group(store, mode="w", attributes={"steps_done": -1})
        steps = segments * STEPS_PER_SEGMENT
        codecs = dict(compressors=[ZstdCodec(), Crc32cCodec()], config={"write_empty_chunks": True})
        group.create_array("energy", shape=(steps, MEMBERS), chunks=(STEPS_PER_SEGMENT, MEMBERS), dtype="f8",
                           fill_value=np.nan, **codecs)
        group.create_array("spin", shape=(segments, MEMBERS, L, L), chunks=(1, MEMBERS, L, L), dtype="i1",
                           fill_value=0, **codecs)
        group.create_array("checkpoint", shape=(2, MEMBERS, L, L), chunks=(1, MEMBERS, L, L), dtype="i1",
                           fill_value=0, **codecs)

    def segment(store, k, rng):
        spins = rng.choice(np.array([-1, 1], dtype="i1"), size=(MEMBERS, L, L))
        energy = rng.normal(size=(STEPS_PER_SEGMENT, MEMBERS))
        zarr.open_array(store, path="energy", mode="r+")[k * STEPS_PER_SEGMENT:(k + 1) * STEPS_PER_SEGMENT] = energy
        zarr.open_array(store, path="spin", mode="r+")[k] = spins
        zarr.open_array(store, path="checkpoint", mode="r+")[k % 2] = spins
        zarr.open_group(store, mode="r+").update_attributes({"steps_done": (k + 1) * STEPS_PER_SEGMENT})

    def run(engine, path, segments, forever=False):
        rng = np.random.default_rng(0)
        if engine == "zarr":
            layout(path, segments)
            print("ready", flush=True)
            start = time.perf_counter()
            for k in range(segments):
                segment(path, k, rng)
        else:
            import icechunk
            repo = icechunk.Repository.create(icechunk.local_filesystem_storage(path))
            session = repo.writable_session("main")
            layout(session.store, segments)
            session.commit("layout")
            print("ready", flush=True)
            start = time.perf_counter()
            for k in range(segments):
                session = repo.writable_session("main")
                segment(session.store, k, rng)
                session.commit(f"segment {k}")
        return (time.perf_counter() - start) / segments

    if __name__ == "__main__":
        engine, path, segments = sys.argv[1], sys.argv[2], int(sys.argv[3])
        print(json.dumps({"seconds_per_segment": run(engine, path, segments)}), flush=True)
""")


def timed(engine: str, folder: Path, segments: int) -> float:
    path = folder / f"{engine}-{time.monotonic_ns()}"
    out = subprocess.run([sys.executable, "-c", ENGINE, engine, str(path), str(segments)], capture_output=True,
                         text=True, check=True)
    shutil.rmtree(path, ignore_errors=True)
    return json.loads(out.stdout.splitlines()[-1])["seconds_per_segment"]


def consistent(engine: str, path: Path) -> tuple[bool, bool]:
    """(readable, every record up to the marker present) after a kill."""
    import numpy as np
    import zarr

    try:
        if engine == "zarr":
            store = str(path)
        else:
            import icechunk

            store = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path))).readonly_session(
                branch="main").store
        done = zarr.open_group(store, mode="r").attrs["steps_done"]
        if done < 0:
            return True, True
        energy = zarr.open_array(store, path="energy", mode="r")[:done]
        spins = zarr.open_array(store, path="spin", mode="r")[: done // 10]
        return True, bool(np.isfinite(energy).all() and (np.abs(spins) == 1).all())
    except Exception:  # noqa: BLE001 (counted)
        return False, False


def kills(engine: str, folder: Path, trials: int, rng: random.Random) -> tuple[int, int]:
    readable = whole = 0
    for t in range(trials):
        path = folder / f"kill-{engine}-{t}"
        proc = subprocess.Popen([sys.executable, "-c", ENGINE, engine, str(path), "100000"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        proc.stdout.readline()
        time.sleep(rng.uniform(0.05, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        r, w = consistent(engine, path)
        readable, whole = readable + r, whole + w
        shutil.rmtree(path, ignore_errors=True)
    return readable, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kills", type=int, default=10)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="eqflow-icechunk-"))
    times = {"zarr": [], "icechunk": []}
    for _ in range(args.repeat):  # taking turns, so both see the same machine load
        for engine in times:
            times[engine].append(timed(engine, folder, args.segments))
    rng = random.Random(0)
    print("| engine | ms per segment (median, range) | ratio to plain Zarr | kills | readable | consistent |")
    print("|---|---|---|---|---|---|")
    base = statistics.median(times["zarr"])
    for engine, found in times.items():
        r, w = kills(engine, folder, args.kills, rng)
        med = statistics.median(found)
        print(f"| {engine} | {1e3 * med:.1f} ({1e3 * min(found):.1f}-{1e3 * max(found):.1f}) | {med / base:.2f}x | "
              f"{args.kills} | {r} | {w} |")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
