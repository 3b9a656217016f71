"""Behavioural checks (CheckList, Ribeiro et al. 2020): hand-written cases every candidate must get right.

A checklist is a YAML file per dataset with three kinds of case:
- minimum_functionality: a text and the label it must get;
- invariance: a text and a variant (punctuation, width, spaces, a neutral clause, a swapped name) that must
  get the same label;
- directional: a variant whose probability of `toward` must not fall below the text's.
The checks need only a function from texts to class probabilities, so they run on any model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

KINDS = ("minimum_functionality", "invariance", "directional")
Predict = Callable[[list[str]], np.ndarray]  # texts → probabilities [n, classes] in the labels' order


class ChecklistError(ValueError):
    """The checklist file can't be used: wrong dataset, unknown label, malformed or duplicate case."""


class _Case(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    text: str


class MinimumFunctionality(_Case):
    label: str
    domain: str | None = None


class Invariance(_Case):
    variant: str
    perturbation: str


class Directional(_Case):
    variant: str
    toward: str
    perturbation: str


CASE_TYPES: dict[str, type[_Case]] = {
    "minimum_functionality": MinimumFunctionality, "invariance": Invariance, "directional": Directional}


@dataclass(frozen=True)
class Checklist:
    path: Path
    dataset: str
    cases: dict[str, list[Any]]  # kind → cases

    def __len__(self) -> int:
        return sum(len(c) for c in self.cases.values())


def load_checklist(path: str | Path, dataset: str, labels: Sequence[str]) -> Checklist:
    """Parse and validate a checklist for `dataset` whose cases may use only `labels`."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ChecklistError(f"{path}: can't read the checklist ({err})") from None
    if not isinstance(raw, dict):
        raise ChecklistError(f"{path}: a checklist is a mapping with dataset, {', '.join(KINDS)}")
    unknown = set(raw) - {"dataset", "labels", *KINDS}
    if unknown:
        raise ChecklistError(f"{path}: unknown section(s) {sorted(unknown)}; "
                             f"allowed: dataset, labels, {', '.join(KINDS)}")
    if raw.get("dataset") != dataset:
        raise ChecklistError(f"{path} is for dataset {raw.get('dataset')!r}, but this pipeline trains on {dataset!r}: "
                             "point check.checklist at the right file")
    cases: dict[str, list[Any]] = {}
    seen: dict[str, str] = {}
    for kind in KINDS:
        cases[kind] = []
        for i, entry in enumerate(raw.get(kind) or []):
            case = _parse(path, kind, i, entry)
            where = f"{path}: {kind} entry {i + 1} ({case.id})"
            if case.id in seen:
                raise ChecklistError(f"{where}: duplicate id, also used in {seen[case.id]}")
            seen[case.id] = kind
            label = getattr(case, "label", None) or getattr(case, "toward", None)
            if label is not None and label not in labels:
                raise ChecklistError(f"{where}: unknown label {label!r}; the model's labels are {list(labels)}")
            if getattr(case, "variant", None) == case.text:
                raise ChecklistError(f"{where}: variant equals text, so it tests nothing")
            cases[kind].append(case)
        texts: dict[tuple[str, str], str] = {}  # (text, variant) → the first case's id
        for case in cases[kind]:
            key = (case.text, getattr(case, "variant", ""))
            if key in texts:
                raise ChecklistError(f"{path}: {kind} case {case.id} repeats case {texts[key]}")
            texts[key] = case.id
    return Checklist(path, dataset, cases)


def _parse(path: Path, kind: str, i: int, entry: Any) -> _Case:
    try:
        return CASE_TYPES[kind].model_validate(entry)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "entry"
        ident = str(entry.get("id", "no id")) if isinstance(entry, dict) else repr(entry)[:40]
        raise ChecklistError(f"{path}: {kind} entry {i + 1} ({ident}): {field}: {first['msg']}") from None


def run_checks(checklist: Checklist, predict: Predict, labels: Sequence[str]) -> dict[str, Any]:
    """Score every case; return pass rates per kind, counts and the failing cases with what the model said."""
    index = {label: i for i, label in enumerate(labels)}
    texts = sorted({t for cases in checklist.cases.values() for c in cases
                    for t in (c.text, getattr(c, "variant", c.text))})
    probs = dict(zip(texts, predict(texts), strict=True)) if texts else {}

    def said(text: str) -> dict[str, Any]:
        p = probs[text]
        return {"label": labels[int(np.argmax(p))],
                "probability": {lab: round(float(p[i]), 4) for lab, i in index.items()}}

    failed: list[dict[str, Any]] = []
    rates, counts = {}, {}
    for kind, cases in checklist.cases.items():
        passed = 0
        for case in cases:
            if kind == "minimum_functionality":
                ok = said(case.text)["label"] == case.label
            elif kind == "invariance":
                ok = said(case.text)["label"] == said(case.variant)["label"]
            else:
                j = index[case.toward]
                ok = bool(probs[case.variant][j] >= probs[case.text][j])
            passed += ok
            if not ok:
                variant = {} if kind == "minimum_functionality" else {"model_said_variant": said(case.variant)}
                failed.append({"kind": kind, **case.model_dump(exclude_none=True), "model_said": said(case.text),
                               **variant})
        counts[kind] = {"cases": len(cases), "passed": passed}
        rates[kind] = round(passed / len(cases), 4) if cases else None
    return {"pass_rate": rates, "counts": counts, "failed": failed}


def below_floors(pass_rates: dict[str, float | None], floors: dict[str, float]) -> list[str]:
    """The kinds whose pass rate is under its floor (a kind with no cases has nothing to fail)."""
    return [f"{kind} {rate:.1%} < {floors[kind]:.0%}" for kind, rate in pass_rates.items()
            if rate is not None and kind in floors and rate < floors[kind]]
