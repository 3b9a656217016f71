"""The registry's champion scores a Spark DataFrame through mlflow.pyfunc.spark_udf, in local mode."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest

from tests.registry import make_registry
from tests.serving.tiny_bundle import TINY_LABELS, TINY_TEXTS, make_tiny_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("textclf-test")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2").getOrCreate())
    yield session
    session.stop()


def test_spark_udf_scores_as_the_bundle(spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from pyspark.sql import functions as F

    from serving.predictor import OnnxPredictor

    bundle = tmp_path / "bundle"
    make_tiny_bundle(bundle)
    uri = make_registry(tmp_path, bundle)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        udf = mlflow.pyfunc.spark_udf(spark, "models:/textclf@champion", env_manager="local")
    finally:
        mlflow.set_tracking_uri(None)
    texts = list(TINY_TEXTS) * 5
    frame = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], ["id", "text"]).repartition(3)
    scored = frame.withColumn("prediction", udf(F.struct("text"))).select("id", "prediction.*").orderBy("id")
    rows = scored.toPandas()
    assert list(rows.columns) == ["id", "label", *(f"score_{label}" for label in TINY_LABELS)]
    expected = OnnxPredictor(bundle).probabilities(texts)
    assert np.abs(rows[[f"score_{label}" for label in TINY_LABELS]].to_numpy() - expected).max() <= 1e-6
    assert rows["label"].tolist() == [TINY_LABELS[k] for k in expected.argmax(axis=1)]
