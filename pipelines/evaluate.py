"""Stage evaluate: score one trained model on val and test and run the behavioural checklist on it.

Writes metrics/<model>.json, metrics/confusion/<model>.csv and the candidate's record for select,
metrics/checks/<model>.json, and logs them to the model's MLflow run (training/assessment.py).
Without a checklist for the dataset the stage says so and the model passes the behavioural gate.
"""

from __future__ import annotations

import json

from pipelines.cli import parser, run
from pipelines.params import MODEL_NAMES, load_params
from training.assessment import Candidate, assess
from training.ensemble import load_member


def main() -> None:
    p = parser(__doc__, "data", "models", "metrics")
    p.add_argument("--model", required=True, choices=MODEL_NAMES)
    args = p.parse_args()
    params = load_params(args.params)
    folder = args.models / args.model
    model, labels = load_member(folder)
    run_id = json.loads((folder / "train.json").read_text())["mlflow_run_id"]
    assess(Candidate(args.model, model, labels, run_id), params, args.data, args.metrics)


if __name__ == "__main__":
    run(main)
