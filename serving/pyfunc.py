"""The exported bundle as an MLflow Model: a pyfunc over onnxruntime and tokenizers, never torch.

`mlflow.pyfunc.load_model("models:/textclf@champion").predict(df)` and `mlflow models serve` score through
the same `OnnxPredictor` as the REST service, so their probabilities are the service's. Imported only where
MLflow is installed (the registry, batch scoring, Spark); the BentoML service never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from serving.contract import score_column
from serving.predictor import OnnxPredictor, score_rows

TEXT_COLUMN = "text"
BUNDLE_ARTIFACT = "bundle"  # key of the bundle folder in the model's artifacts


def input_texts(model_input: Any) -> list[Any]:
    """Texts from a DataFrame's `text` column (or its only column), a Series, a list or one string."""
    if isinstance(model_input, pd.DataFrame):
        if TEXT_COLUMN in model_input.columns:
            return model_input[TEXT_COLUMN].tolist()
        if len(model_input.columns) == 1:
            return model_input.iloc[:, 0].tolist()
        raise ValueError(f"input needs a '{TEXT_COLUMN}' column; it has {list(model_input.columns)}")
    return [model_input] if isinstance(model_input, str) else list(model_input)


def score_frame(predictor: OnnxPredictor, values: list[Any], index: Any = None) -> pd.DataFrame:
    """Score the string rows; a missing or non-string text gets a null label and null scores (as batch
    scoring passes it through), so one bad row never fails a Spark job."""
    probs, bad = score_rows(predictor, values)
    probs, labels = np.nan_to_num(probs), predictor.labels
    # `label` (argmax) and one `score_<label>` column per label: the model's signature.
    frame = pd.DataFrame({"label": [labels[k] for k in probs.argmax(axis=1)] if len(probs) else []}, index=index)
    for k, label in enumerate(labels):
        frame[score_column(label)] = probs[:, k].astype(np.float64)
    frame.loc[bad, "label"] = None
    frame.loc[bad, frame.columns[1:]] = np.nan
    return frame


class BundleModel(mlflow.pyfunc.PythonModel):
    """Loads the bundle once per process; `predict` returns `label` and `score_<label>` per text."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        # One intra-op thread per process: Spark and `mlflow models serve` scale out with processes.
        self.predictor = OnnxPredictor(context.artifacts[BUNDLE_ARTIFACT])

    # pd.DataFrame is a hint MLflow accepts without inferring a schema from it: the logged signature is the schema.
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        index = model_input.index if isinstance(model_input, pd.DataFrame) else None
        return score_frame(self.predictor, input_texts(model_input), index)


def signature(labels: Sequence[str]):
    """`text` (string) in; `label` (string) and one double per label out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = [ColSpec("string", "label")] + [ColSpec("double", score_column(label)) for label in labels]
    return ModelSignature(inputs=Schema([ColSpec("string", TEXT_COLUMN)]), outputs=Schema(outputs))


def download_bundle(uri: str, dst: str | None = None) -> Path:
    """The bundle folder inside a registered pyfunc model (`models:/textclf@champion`, `models:/textclf/3`),
    downloaded without loading it: no onnxruntime session is opened."""
    import yaml
    from mlflow.artifacts import download_artifacts

    try:
        folder = Path(download_artifacts(uri, dst_path=dst))
        flavor = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))["flavors"]["python_function"]
        return folder / flavor["artifacts"][BUNDLE_ARTIFACT]["path"]
    except Exception as err:  # MlflowException for an unknown name or alias; KeyError for a model of another kind
        name = uri.removeprefix("models:/").split("@")[0].split("/")[0]
        first = str(getattr(err, "message", err)).splitlines()[0] if str(err) else type(err).__name__
        raise FileNotFoundError(f"cannot load {uri}: {first} (registered model '{name}'; run `dvc repro` until "
                                "a model passes the promotion gate)") from None


def load_predictor(uri: str, intra_op_threads: int = 1) -> OnnxPredictor:
    """An `OnnxPredictor` on the bundle of a registered pyfunc model, e.g. `models:/textclf@champion`."""
    return OnnxPredictor(download_bundle(uri), intra_op_threads=intra_op_threads)
