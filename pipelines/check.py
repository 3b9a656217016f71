"""Stage check: run the dataset's behavioural checklist on one candidate; pass rates to metrics/ and MLflow.

Without a checklist for the dataset the stage says so and the candidate passes the behavioural gate.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from pipelines.cli import parser, run, write_json
from pipelines.params import CANDIDATES, load_params
from training.checks import Checklist, below_floors, load_checklist, run_checks
from training.ensemble import load_candidate
from training.export import pad_batch
from training.tokenizer import encode
from training.tracking import dataset_name, quiet_mlflow, tracking_uri

log = logging.getLogger("textclf.check")


def find_checklist(setting: str, source: str, root: Path = Path("checks")) -> Path | None:
    """`auto` → checks/<dataset>.yaml if present; `none` → no checks; anything else is a path that must exist."""
    if setting == "none":
        return None
    if setting == "auto":
        path = root / f"{dataset_name(source)}.yaml"
        return path if path.is_file() else None
    if not Path(setting).is_file():
        raise FileNotFoundError(f"check.checklist: {setting} not found; give a checklist file, auto or none")
    return Path(setting)


def torch_predictor(model: torch.nn.Module, tokenizer: Tokenizer, batch_size: int = 64):
    """texts → probabilities with the PyTorch model, batched the way serving pads."""

    @torch.inference_mode()
    def predict(texts: list[str]) -> np.ndarray:
        ids = encode(tokenizer, texts)
        parts = [model(torch.from_numpy(pad_batch(ids[i : i + batch_size]))).softmax(-1).numpy()
                 for i in range(0, len(ids), batch_size)]
        return np.concatenate(parts)

    return predict


def check_model(checklist: Checklist | None, predict, labels: list[str], floors: dict[str, float]) -> dict:
    if checklist is None:
        return {"checklist": None, "passed": True, "below_floor": [], "pass_rate": {}, "failed": []}
    results = run_checks(checklist, predict, labels)
    failing = below_floors(results["pass_rate"], floors)
    return {"checklist": str(checklist.path), "passed": not failing, "below_floor": failing, **results}


def log_to_run(train_summary: Path, results: dict, path: Path) -> None:
    import mlflow

    quiet_mlflow()
    run_id = json.loads(train_summary.read_text())["mlflow_run_id"]
    client = mlflow.MlflowClient(tracking_uri())
    for kind, rate in results["pass_rate"].items():
        if rate is not None:
            client.log_metric(run_id, f"check_{kind}_pass_rate", rate)
    client.set_tag(run_id, "behavioural_checks", "passed" if results["passed"] else "failed")
    client.log_artifact(run_id, str(path), "checks")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--model", required=True, choices=CANDIDATES)
    p.add_argument("--models", default="models")
    p.add_argument("--data", default="data/processed")
    p.add_argument("--metrics", default="metrics")
    args = p.parse_args()
    params = load_params(args.params)
    model, labels, _ = load_candidate(Path(args.models) / args.model)
    path = find_checklist(params.check.checklist, params.data.source)
    checklist = None
    if path is None:
        log.info("check %s: no checklist for dataset %r (looked for checks/%s.yaml): the behavioural gate passes",
                 args.model, dataset_name(params.data.source), dataset_name(params.data.source))
    else:
        checklist = load_checklist(path, dataset_name(params.data.source), labels)
    tokenizer = Tokenizer.from_file(str(Path(args.data) / "tokenizer.json"))
    results = check_model(checklist, torch_predictor(model, tokenizer), labels,
                          params.check.floors.model_dump())
    out = Path(args.metrics) / "checks" / f"{args.model}.json"
    write_json(out, {"model": args.model, **results})
    log_to_run(Path(args.models) / args.model / "train.json", results, out)
    if checklist is None:
        return
    rates = ", ".join(f"{k} {v:.1%}" for k, v in results["pass_rate"].items() if v is not None) or "no cases"
    log.info("check %s: %s; %s", args.model, rates,
             "passes the floors" if results["passed"] else f"below the floors: {'; '.join(results['below_floor'])}")


if __name__ == "__main__":
    run(main)
