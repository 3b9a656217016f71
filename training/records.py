"""The records stages hand each other, typed; the only code that reads or writes them. metrics/checks/<candidate>.json
(`CheckRecord`: evaluate, ensemble → select), metrics/candidate.json (`CandidateRecord`: select → export) and
metrics/best.json (`BestRecord`: export, rollback). Their keys are fixed names (DESIGN.md, README): the fields keep
the files' order, and an unset optional field stays out of the file, as it always did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from training.jsonio import write_json


def omitted_when_unset() -> Any:
    return Field(None, exclude_if=lambda value: value is None)


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", serialize_by_alias=True, validate_by_name=True)
    stage: ClassVar[str]  # the `dvc repro` stage that writes the file

    @classmethod
    def writer(cls, path: Path) -> str:
        return cls.stage

    @classmethod
    def read(cls, path: Path) -> Self:
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `dvc repro {cls.writer(path)}` first")
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as err:
            first = err.errors()[0]
            raise ValueError(f"{path} is not a {cls.__name__} ('{'.'.join(map(str, first['loc']))}': {first['msg']}):"
                             f" an older or hand-edited file; run `dvc repro -f {cls.writer(path)}`") from None

    def write(self, path: Path) -> None:
        write_json(path, self.model_dump(mode="json"))


class Scores(Record):
    accuracy: float
    macro_f1: float


class Calibration(Record):  # training/calibration.py's temperature and ECE with and without it
    method: str
    temperature: float
    bins: int
    fitted_on: str
    val_ece: float
    val_ece_uncalibrated: float
    test_ece: float
    test_ece_uncalibrated: float


class Standing(Scores):  # one candidate's line in metrics/candidate.json: its val scores, checks and cost
    checks_passed: bool
    check_pass_rate: dict[str, float | None]
    test_ece: float
    cost_ms_per_text: float


class CheckRecord(Record):
    """metrics/checks/<candidate>.json: a candidate's MLflow run, headline scores, serving cost and checks."""

    model: str
    mlflow_run_id: str
    members: list[str] | None = omitted_when_unset()  # an ensemble's models
    val: Scores
    test: Scores
    calibration: Calibration
    cost_ms_per_text: float
    # The ensemble's: why these members, every subset scored, each member's cost.
    members_chosen_because: str | None = omitted_when_unset()
    subsets: list[dict[str, Any]] | None = omitted_when_unset()
    member_cost_ms_per_text: dict[str, float] | None = omitted_when_unset()
    checklist: str | None  # None: the dataset has no checklist, and the candidate passes
    passed: bool
    below_floor: list[str]
    pass_rate: dict[str, float | None]
    counts: dict[str, dict[str, int]] | None = omitted_when_unset()
    failed: list[dict[str, Any]]

    @classmethod
    def writer(cls, path: Path) -> str:
        return "ensemble" if path.stem == "ensemble" else f"evaluate@{path.stem}"

    def standing(self) -> Standing:
        return Standing(accuracy=self.val.accuracy, macro_f1=self.val.macro_f1, checks_passed=self.passed,
                        check_pass_rate=self.pass_rate, test_ece=self.calibration.test_ece,
                        cost_ms_per_text=self.cost_ms_per_text)


class Champion(Record):
    version: str
    model: str | None
    run_id: str
    model_uri: str | None = omitted_when_unset()

    @classmethod
    def of(cls, version: Any, registered: str | None = None) -> Self:
        """From an MLflow ModelVersion; `registered`: the registered model's name, to give its URI too."""
        return cls(version=str(version.version), model=version.tags.get("model"), run_id=version.run_id,
                   model_uri=registered and f"models:/{registered}/{version.version}")


class CandidateRecord(Record):
    """metrics/candidate.json: the candidate select chose, why, the gate's verdict, and every candidate's standing."""

    stage = "select"
    model: str
    members: list[str] | None = omitted_when_unset()
    val: Scores
    test: Scores
    calibration: Calibration
    chosen_because: str
    run_id: str
    gate_passed: bool
    reason: str
    data_hash: str
    registered_model: str
    champion: Champion | None  # when select ran
    candidates: dict[str, Standing]


class Parity(Record):  # ONNX Runtime against PyTorch (training/export.py), or why the export failed it
    max_abs_diff: float | None = omitted_when_unset()
    texts: int | None = omitted_when_unset()
    batches: int | None = omitted_when_unset()
    atol: float | None = omitted_when_unset()
    passed: bool
    error: str | None = omitted_when_unset()


class Decision(Record):  # what export made of the candidate; `reason`: why it was, or was not, promoted
    parity: Parity
    registered_version: str | None = None
    promoted: bool = False
    reason: str


class Rollback(Record):
    from_: str | None = Field(alias="from")
    to: str
    at: str | None
    reason: str


class BestRecord(Decision, CandidateRecord):
    """metrics/best.json: the candidate's record, export's decision on it (in place of select's reason) and
    the champion as it now stands; a rollback records itself too."""

    stage = "export"
    rollback: Rollback | None = omitted_when_unset()
