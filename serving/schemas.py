"""Request and response shapes of the REST API (pydantic v2); they are what the OpenAPI page shows."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model


def texts_type(max_texts: int, max_chars: int) -> Any:
    """The `texts` field of POST /classify: 1..max_texts strings of at most max_chars characters each."""
    text = Annotated[str, StringConstraints(max_length=max_chars)]
    return Annotated[
        list[text],
        Field(
            min_length=1,
            max_length=max_texts,
            description=f"1 to {max_texts} texts, each at most {max_chars} characters",
            examples=[["这本书很好看", "质量太差了"]],
        ),
    ]


class Prediction(BaseModel):
    id: str = Field(description="names this prediction: send it back with the true label to POST /feedback")
    label: str = Field(description="the most probable label")
    score: float = Field(description="probability of that label")
    scores: dict[str, float] = Field(description="probability of every label, in the model's label order")


class ModelCard(BaseModel):
    model_name: str
    version: str
    labels: list[str]
    max_len: int = Field(description="tokens kept per text; longer texts are truncated")
    metrics: dict[str, Any] = Field(description="evaluation metrics recorded at export")
    calibration: dict[str, Any] | None = Field(
        None, description="how the scores were calibrated (a temperature fitted on validation, inside the model) "
                          "and the expected calibration error (top label, 15 bins) on val and test")
    data_hash: str | None = None
    git_commit: str | None = None
    created: str | None = None
    providers: list[str] = Field(description="onnxruntime execution providers in use")
    limits: dict[str, int] = Field(description="request limits: max_texts, max_chars, max_body_bytes")
    rollout: dict[str, Any] = Field(description="what the worker follows (a release channel or a fixed bundle), "
                                    "the release it serves, when it last checked, and the last release it refused")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1, description="the `id` of a prediction returned by POST /classify")
    label: str = Field(min_length=1, description="the true label of that text; one of the model's labels (GET /model)")


class FeedbackReceipt(BaseModel):
    id: str
    label: str = Field(description="the label stored; sending the same id again replaces it")
    predicted: str = Field(description="what the model answered")
    model_version: str


def with_labels(model: type[BaseModel], labels: tuple[str, ...] | None) -> type[BaseModel]:
    """`model` with its `label` an enum of the model's labels, for the OpenAPI document.

    A worker's labels never change (serving/rollout.py refuses a release with others), so the enum read when the
    worker starts stays true. With no release published yet the labels are unknown: `model` itself (any string),
    and the served model's labels are checked per request all the same."""
    if not labels:
        return model
    description = model.model_fields["label"].description
    return create_model(model.__name__, __base__=model, label=(Literal[labels], Field(description=description)))
