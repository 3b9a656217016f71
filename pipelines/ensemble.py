"""Stage ensemble: the best subset of the trained models, their averaged probabilities, as one more candidate.

Every subset of two or more of params.yaml's train.models (read from models/<model>/best.ckpt) is scored on
validation; the best val macro-F1 wins, and among subsets within `select.tolerance` of it (the seed spread)
the cheapest to serve, by each member's measured cost (training/choice.py). The members' val and test outputs
are read from their evaluate stages (metrics/logits/, training/split_logits.py) when they match the
checkpoints and splits, and predicted otherwise. The stage opens an MLflow run for the ensemble, tagged
`member.<model>` with each member's run (which holds that member's checkpoint and the tokenizer), then scores
and checks it like evaluate does a single model (metrics/ensemble.json, metrics/checks/ensemble.json). Once
exported, the ensemble's own run holds its MLflow Model.
"""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import mlflow
import torch

from pipelines.cli import parser, run
from pipelines.params import ENSEMBLE, load_params
from training.assessment import Candidate, assess, cost_sample
from training.choice import Option, cheapest_within
from training.cost import serving_cost
from training.ensemble import CHECKPOINT, AveragedProbabilities, load_ensemble, mean_log_probs
from training.evaluation import score
from training.split_logits import SPLITS, held_out_digest, held_out_logits
from training.textdata import TextData
from training.tracking import experiment_name, log_splits, open_experiment, run_tags, tracking_uri

log = logging.getLogger("textclf.ensemble")


def member_runs(models_dir: Path, members: list[str]) -> dict[str, str]:
    """Each member's MLflow run, from its train stage's summary."""
    runs = {}
    for member in members:
        summary = models_dir / member / "train.json"
        if not summary.is_file():
            raise FileNotFoundError(f"{models_dir / member} has no trained model: run `dvc repro train@{member}`")
        runs[member] = json.loads(summary.read_text())["mlflow_run_id"]
    return runs


def subsets_of(models: list[str]) -> list[tuple[str, ...]]:
    """Every subset of two or more models, smaller first (a lone model is its own candidate already)."""
    if len(models) == 1:
        return [tuple(models)]
    return [c for size in range(2, len(models) + 1) for c in itertools.combinations(models, size)]


def choose_members(probs: dict[str, torch.Tensor], target: torch.Tensor, labels: list[str],
                   costs: dict[str, float], tolerance: float) -> dict:
    """Score every subset's averaged val probabilities and choose (training/choice.py).

    Returns {"members", "why", "member_cost_ms_per_text", "subsets": [{members, val_macro_f1, cost_ms_per_text}]};
    a subset's cost is the sum of its members' (each measured once, on the same texts).
    """
    options = []
    for subset in subsets_of(list(probs)):
        mean = torch.stack([probs[m] for m in subset]).mean(0)
        f1 = score(mean.argmax(-1), target, labels)["macro_f1"]
        options.append(Option("+".join(subset), f1, round(sum(costs[m] for m in subset), 4)))
    chosen, why = cheapest_within(options, tolerance)
    table = [{"members": o.name.split("+"), "val_macro_f1": o.val_macro_f1, "cost_ms_per_text": o.cost_ms}
             for o in sorted(options, key=lambda o: -o.val_macro_f1)]
    return {"members": chosen.name.split("+"), "why": why, "member_cost_ms_per_text": costs, "subsets": table}


def open_run(choice: dict, runs: dict[str, str], data_dir: Path, source: str) -> str:
    """A finished MLflow run for the ensemble, tagged with its members' runs (their checkpoints live there), with
    the reason and the subsets' table where the MLflow UI shows them."""
    experiment_id = open_experiment(experiment_name(source))
    client = mlflow.MlflowClient(tracking_uri())
    tags = {**run_tags(ENSEMBLE, str(data_dir)), **{f"member.{m}": run_id for m, run_id in runs.items()}}
    run_id = client.create_run(experiment_id, run_name=ENSEMBLE, tags=tags).info.run_id
    client.log_param(run_id, "members", ",".join(runs))
    client.log_param(run_id, "combination", "mean of the members' probabilities, temperature-scaled")
    log_splits(client, run_id, str(data_dir))
    client.set_tag(run_id, "members_chosen_because", choice["why"][:5000])
    client.log_dict(run_id, choice, "ensemble/subsets.json")
    client.set_terminated(run_id)
    return run_id


def main() -> None:
    args = parser(__doc__, "models", "data", "metrics").parse_args()
    params = load_params(args.params)
    trained, models_dir, data_dir = list(params.train.models), args.models, args.data
    runs = member_runs(models_dir, trained)
    everything, labels = load_ensemble(models_dir, trained)
    tp = params.train.trainer
    data = TextData(data_dir, data_dir / "tokenizer.json", tp.batch_size, seed=tp.seed)
    # Each member's val probabilities and its measured serving cost (ms a text).
    by_name = dict(zip(trained, everything.members, strict=True))
    held_out = held_out_digest(data_dir)  # hashed once for every member's key
    logits = {m: held_out_logits(model, models_dir / m / CHECKPOINT, data, args.metrics / "logits" / f"{m}.npz",
                                 held_out) for m, model in by_name.items()}
    probs = {m: split["val"].softmax(-1) for m, split in logits.items()}
    texts = cost_sample(data)
    costs = {m: serving_cost(model, data.tokenizer, texts) for m, model in by_name.items()}
    target = torch.tensor(data.datasets["val"].labels, dtype=torch.long)
    choice = choose_members(probs, target, data.labels, costs, params.select.tolerance)
    members = choice["members"]
    model = AveragedProbabilities([by_name[m] for m in members]).eval()
    run_id = open_run(choice, {m: runs[m] for m in members}, data_dir, params.data.source)
    log.info("ensemble: %s averaged (%s), MLflow run %s", ", ".join(members), choice["why"], run_id)
    details = {"members_chosen_because": choice["why"], "subsets": choice["subsets"],
               "member_cost_ms_per_text": choice["member_cost_ms_per_text"]}
    averaged = {s: mean_log_probs([logits[m][s] for m in members]) for s in SPLITS}  # what `model` outputs
    assess(Candidate(ENSEMBLE, model, labels, run_id, members, details), params, args.metrics, data, averaged)


if __name__ == "__main__":
    run(main)
