"""Stage evaluate: score one trained model on val and test and run the behavioural checklist on it.

Writes metrics/<model>.json, metrics/confusion/<model>.csv and the candidate's record for select,
metrics/checks/<model>.json, and logs them to the model's MLflow run (training/assessment.py); its val and test
logits go to metrics/logits/<model>.npz for the ensemble stage (training/split_logits.py).
Without a checklist for the dataset the stage says so and the model passes the behavioural gate.
metrics/<model>.json carries a `training` block from models/<model>/train.json: the texts it trained on, for how
long and why it stopped, so models trained under a budget (train.trainer.texts_per_epoch, max_time) are compared
knowing it.
"""

from __future__ import annotations

import json
from typing import Any

from pipelines.cli import parser, run
from pipelines.params import MODEL_NAMES, load_params
from training.assessment import Candidate, assess
from training.ensemble import CHECKPOINT, load_member
from training.evaluation import check_labels
from training.split_logits import held_out_digest, logits_key, predict_held_out, save_logits
from training.textdata import TextData


def training_block(summary: dict[str, Any]) -> dict[str, Any]:
    """The train stage's summary as metrics: best val macro-F1, epochs and the budget, without the per-rank list
    (train.json keeps it)."""
    budget = {k: v for k, v in (summary.get("budget") or {}).items() if k != "ranks"}
    return {"best_val_macro_f1": summary["best_val_macro_f1"], "epochs": summary["epochs"], **budget}


def main() -> None:
    p = parser(__doc__, "data", "models", "metrics")
    p.add_argument("--model", required=True, choices=MODEL_NAMES)
    args = p.parse_args()
    params = load_params(args.params)
    folder = args.models / args.model
    model, labels = load_member(folder)
    summary = json.loads((folder / "train.json").read_text())
    candidate = Candidate(args.model, model, labels, summary["mlflow_run_id"], training=training_block(summary))
    tp = params.train.trainer
    data = TextData(args.data, args.data / "tokenizer.json", tp.batch_size, seed=tp.seed)
    check_labels(labels, data)  # before minutes of prediction, not after
    logits = predict_held_out(model, data)
    # kept for the ensemble stage, which averages its members' outputs instead of predicting them again
    key = logits_key(folder / CHECKPOINT, held_out_digest(args.data))
    save_logits(args.metrics / "logits" / f"{args.model}.npz", logits, key)
    assess(candidate, params, args.metrics, data, logits)


if __name__ == "__main__":
    run(main)
