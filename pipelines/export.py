"""Stage export: the registry's champion → artifacts/bundle/ (model.onnx, tokenizer.json, meta.json).

The bundle is built in a temporary folder and swapped in only after the parity check passes, so a
failed export leaves the previous bundle in place.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from tokenizers import Tokenizer

from pipelines.cli import parser, run, write_json
from pipelines.params import load_params
from training.ensemble import load_candidate
from training.export import check_parity, export_onnx, write_meta
from training.tokenizer import encode, file_sha256
from training.tracking import quiet_mlflow, tracking_uri

log = logging.getLogger("textclf.export")


def fetch_champion(client, name: str, dest: Path):
    """Download the champion's checkpoint folder (best.ckpt + tokenizer.json) from its MLflow run."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        raise FileNotFoundError(f"registered model '{name}' has no champion: no model has passed the "
                                "promotion gate yet (see metrics/best.json)") from None
    folder = Path(client.download_artifacts(version.run_id, "checkpoint", str(dest)))
    return version, folder


def main() -> None:
    import mlflow

    p = parser(__doc__)
    p.add_argument("--data", default="data/processed")
    p.add_argument("--out", default="artifacts/bundle")
    p.add_argument("--metrics", default="metrics")
    args = p.parse_args()
    params = load_params(args.params)
    quiet_mlflow()
    client = mlflow.MlflowClient(tracking_uri())
    best = json.loads((Path(args.metrics) / "best.json").read_text())
    out = Path(args.out)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        tmp = Path(tmp)
        version, folder = fetch_champion(client, best["registered_model"], tmp / "download")
        model, labels, model_name = load_candidate(folder)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        staged = tmp / "bundle"
        staged.mkdir()
        shutil.copy(folder / "tokenizer.json", staged / "tokenizer.json")
        tokenizer_sha = file_sha256(staged / "tokenizer.json")
        model_name = version.tags.get("model", model_name)
        export_onnx(model, staged / "model.onnx", {
            "labels": json.dumps(labels, ensure_ascii=False), "model_name": model_name,
            "version": str(version.version), "tokenizer_sha256": tokenizer_sha,
        }, params.export.opset)
        texts = pd.read_parquet(Path(args.data) / "test.parquet")["text"].tolist()
        parity = check_parity(model, staged / "model.onnx", encode(tokenizer, texts), params.export.parity_atol)
        run_data = client.get_run(version.run_id).data
        write_meta(staged / "meta.json", {
            "model_name": model_name, "version": str(version.version), "labels": labels,
            "max_len": tokenizer.truncation["max_length"], "registered_model": best["registered_model"],
            "metrics": {k: v for k, v in run_data.metrics.items() if k.endswith("_final")},
            "data_hash": version.tags.get("data_hash"), "git_commit": run_data.tags.get("git_commit"),
            "mlflow_run_id": version.run_id, "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "tokenizer_sha256": tokenizer_sha,
        })
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), str(out))
    write_json(Path(args.metrics) / "export.json", {"parity": parity, "model": model_name,
                                                     "version": str(version.version)})
    client.log_metric(version.run_id, "onnx_parity_max_abs_diff", parity["max_abs_diff"])
    client.log_artifacts(version.run_id, str(out), "bundle")
    log.info("export: %s v%s → %s (parity max |Δp| %.2e over %d texts)", model_name, version.version, out,
             parity["max_abs_diff"], parity["texts"])


if __name__ == "__main__":
    run(main)
