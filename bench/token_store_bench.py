"""Token store formats for lazy reads: a flat memory-mapped int32 file with offsets (what preprocess writes)
against Arrow's list<int32> in a memory-mapped IPC file, on the access pattern training has (random single
rows, as the length-bucketed sampler asks for them) and the one the tfidf fit has (contiguous chunks).

    python -m bench.token_store_bench --texts 2000000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from training.token_store import TokenSplit, write_split

REPO = Path(__file__).resolve().parents[1]


def fake_ids(n: int, seed: int = 0) -> list[np.ndarray]:
    """Token id rows with the built-in corpus's length profile (median ~50 tokens, a long tail)."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(3.9, 0.8, n).astype(int), 1, 512)
    return [rng.integers(3, 8000, k, dtype=np.int32) for k in lengths]


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--texts", type=int, default=2_000_000)
    p.add_argument("--reads", type=int, default=200_000)
    args = p.parse_args()
    rows = fake_ids(args.texts)
    labels = np.zeros(args.texts, dtype=np.int32)
    rng = np.random.default_rng(1)
    picks = rng.integers(0, args.texts, args.reads).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        write_split(folder, "train", ((rows[i:i + 50_000], labels[i:i + 50_000]) for i in range(0, args.texts, 50_000)))
        flat_write = time.perf_counter() - start
        start = time.perf_counter()
        array = pa.array(rows, type=pa.list_(pa.int32()))
        schema = pa.schema([("ids", array.type)])
        with pa.OSFile(str(folder / "ids.arrow"), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            writer.write_table(pa.table({"ids": array}))
        arrow_write = time.perf_counter() - start
        del array
        split = TokenSplit(folder, "train")
        mapped = pa.ipc.open_file(pa.memory_map(str(folder / "ids.arrow"))).read_all().column("ids")
        chunk = mapped.combine_chunks()
        offsets, values = chunk.offsets.to_numpy(), chunk.values.to_numpy()
        result = {
            "texts": args.texts, "random_reads": args.reads,
            "write_seconds": {"flat_memmap": round(flat_write, 2), "arrow_ipc": round(arrow_write, 2)},
            "bytes_per_text": {
                "flat_memmap": round(sum(f.stat().st_size for f in folder.glob("train.*")) / args.texts, 1),
                "arrow_ipc": round((folder / "ids.arrow").stat().st_size / args.texts, 1)},
            "random_rows_per_second": {
                "flat_memmap": round(args.reads / timed(lambda: [split.ids[i] for i in picks])),
                "arrow_ipc_as_py": round(args.reads / timed(lambda: [chunk[i].as_py() for i in picks])),
                "arrow_ipc_numpy_views": round(args.reads / timed(
                    lambda: [values[offsets[i]:offsets[i + 1]].tolist() for i in picks])),
            },
            "chunk_rows_per_second": {
                "flat_memmap": round(args.texts / timed(lambda: [split.ids[i:i + 20_000]
                                                                 for i in range(0, args.texts, 20_000)], 1)),
                "arrow_ipc_as_py": round(args.texts / timed(lambda: [chunk.slice(i, 20_000).to_pylist()
                                                                     for i in range(0, args.texts, 20_000)], 1)),
            },
        }
    out = REPO / "bench/results/token_store.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
