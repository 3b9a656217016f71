"""Batch scoring benchmark: `pipelines.predict` against the REST service and in-process onnxruntime on the same
texts; its peak memory at 10k and at 1M rows; Spark local[2] through `spark_udf` against `pipelines.predict`
on the same file; the pyfunc champion's parity with the REST service.

    python -m bench.batch_bench                       # after `dvc repro`: artifacts/bundle, models:/textclf@champion
    python -m bench.batch_bench --big-rows 200000     # a shorter memory run

Writes bench/results/batch.json. Needs wrk (apt-get install -y wrk) and the spark extra.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.serve_bench import BIN, REPO, Served, run_wrk, write_bodies

PEAK_RSS = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def corpus_texts(data: Path) -> list[str]:
    """Real texts: the test split (never used to choose), so the length mix is the corpus's."""
    return pd.read_parquet(data / "test.parquet")["text"].tolist()


def write_rows(path: Path, texts: list[str], rows: int) -> Path:
    """`rows` texts (the corpus repeated) with an id column, written in chunks so the bench itself stays small."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, start = None, 0
    while start < rows:
        n = min(100_000, rows - start)
        chunk = pa.table({"id": np.arange(start, start + n), "text": [texts[i % len(texts)] for i in
                                                                       range(start, start + n)]})
        if path.suffix == ".parquet":
            writer = writer or pq.ParquetWriter(path, chunk.schema)
            writer.write_table(chunk)
        else:
            chunk.to_pandas().to_csv(path, mode="a", header=start == 0, index=False)
        start += n
    if writer is not None:
        writer.close()
    return path


def predict_cli(source: Path, rows: int, out: Path, model: str) -> tuple[float, int]:
    """(texts/s, peak RSS in KiB) of one `python -m pipelines.predict` process over `rows` rows."""
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "pipelines.predict", str(source),
                           str(out), "--model", model, "--no-progress"], cwd=REPO, capture_output=True, text=True,
                          check=True)
    seconds = time.perf_counter() - start
    return rows / seconds, int(done.stdout.strip().splitlines()[-1])


def in_process(bundle: Path, texts: list[str]) -> float:
    from serving.predictor import OnnxPredictor

    predictor = OnnxPredictor(bundle, intra_op_threads=os.cpu_count() or 1)  # as pipelines.predict does
    predictor.probabilities(texts[:256])
    start = time.perf_counter()
    for i in range(0, len(texts), 10_000):
        predictor.probabilities(texts[i : i + 10_000])
    return len(texts) / (time.perf_counter() - start)


def rest(bundle: Path, texts: list[str], work: Path, seconds: int) -> tuple[float, np.ndarray]:
    """Texts/s of the REST service at 32 texts a request, and its scores for `texts[:500]`."""
    import httpx

    bodies = write_bodies(work / "bodies.jsonl", texts, 32)
    env = {"BENTOML_DO_NOT_TRACK": "true", "BENTOML_HOME": str(work / "bentoml"), "TEXTCLF_BUNDLE": str(bundle)}
    server = Served([str(BIN / "bentoml"), "serve", "serving.service:Classifier", "--host", "127.0.0.1", "--port",
                     "{port}"], env, work / "serve.log")
    try:
        run_wrk(server.url, bodies, 8, 3)
        result = run_wrk(server.url, bodies, 8, seconds)
        scores = []
        for i in range(0, 500, 32):
            answer = httpx.post(f"{server.url}/classify", json={"texts": texts[i : min(i + 32, 500)]}, timeout=60)
            scores += [list(item["scores"].values()) for item in answer.json()]
    finally:
        server.stop()
    return result.rps * 32, np.array(scores)


def spark_texts_per_s(source: Path, model: str, out: Path) -> float:
    import mlflow
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.driver.memory", "4g").getOrCreate())
    try:
        udf = mlflow.pyfunc.spark_udf(spark, model, env_manager="local")
        frame = spark.read.parquet(str(source)).repartition(spark.sparkContext.defaultParallelism)
        frame.withColumn("p", udf(F.struct("text"))).select("*", "p.*").drop("p").limit(10).collect()  # warm
        start = time.perf_counter()
        (frame.withColumn("p", udf(F.struct("text"))).select("*", "p.*").drop("p")
         .write.mode("overwrite").parquet(str(out)))
        return frame.count() / (time.perf_counter() - start)
    finally:
        spark.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bundle", type=Path, default=Path("artifacts/bundle"))
    p.add_argument("--model-uri", default="models:/textclf@champion")
    p.add_argument("--data", type=Path, default=Path("data/processed"))
    p.add_argument("--rows", type=int, default=50_000, help="rows for the throughput comparisons")
    p.add_argument("--big-rows", type=int, default=1_000_000, help="rows for the memory run")
    p.add_argument("--seconds", type=int, default=15, help="wrk duration")
    p.add_argument("--out", type=Path, default=Path("bench/results/batch.json"))
    args = p.parse_args()
    import mlflow

    texts = corpus_texts(args.data)
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": args.rows,
                     "bundle": json.loads((args.bundle / "meta.json").read_text())["model_name"]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        many = [texts[i % len(texts)] for i in range(args.rows)]
        results["in_process_onnxruntime_texts_per_s"] = in_process(args.bundle, many)
        results["rest_texts_per_s"], rest_scores = rest(args.bundle.resolve(), texts, work, args.seconds)
        pyfunc = mlflow.pyfunc.load_model(args.model_uri).predict(pd.DataFrame({"text": texts[:500]}))
        results["pyfunc_vs_rest_max_abs_diff"] = float(np.abs(pyfunc.filter(like="score_").to_numpy()
                                                              - rest_scores).max())
        parquet = write_rows(work / "rows.parquet", texts, args.rows)
        csv = write_rows(work / "rows.csv", texts, args.rows)
        bundle = str(args.bundle)
        results["predict_parquet_texts_per_s"], _ = predict_cli(parquet, args.rows, work / "out.parquet", bundle)
        results["predict_csv_texts_per_s"], _ = predict_cli(csv, args.rows, work / "out.csv", bundle)
        results["spark_local2_texts_per_s"] = spark_texts_per_s(parquet, args.model_uri, work / "spark-out")
        print(json.dumps(results, indent=2), flush=True)
        for rows in (10_000, args.big_rows):
            source = write_rows(work / f"rss-{rows}.csv", texts, rows)
            speed, rss = predict_cli(source, rows, work / f"rss-{rows}-out.csv", str(args.bundle))
            results[f"predict_csv_{rows}_rows"] = {"texts_per_s": speed, "peak_rss_mib": rss / 1024}
            source.unlink()
            print(rows, results[f"predict_csv_{rows}_rows"], flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
