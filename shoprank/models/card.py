"""The model card: what a model version was trained on and with, written at export, read by serving.

Why a dataclass and not a dict: the online path builds a version's candidates and labels from its
card (`training_set`, `search_config`), so a key renamed on one side and not the other would serve
silently with defaults. One type, read and written here, makes a renamed field a failing import or
test instead. A card written by an older version still reads: unknown keys are kept in `notes`,
missing ones take their defaults.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from shoprank.models import CARD_FILE


@dataclass
class ModelCard:
    model: str
    data_cutoffs: list[str] = field(default_factory=list)
    #: the training configuration (`TrainConfig` as a dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    #: how the training set was built: the online path builds candidates the same way
    training_set: dict[str, Any] | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    device: str = ""
    #: the Keras dtype policy training ran under; the export is float32 whatever it was
    precision: str = "float32"
    examples_per_second: float = 0.0
    train_seconds: float = 0.0
    #: accelerator time the training held (GPUs x hours; 0 on CPU) and its price at the configured rate
    accelerator_hours: float = 0.0
    estimated_cost_usd: float = 0.0
    #: where a preempted run picked up again ({"epoch", "batch"} of the last backup), None if it never stopped
    resumed_from: dict[str, int] | None = None
    search_trials: list[dict] = field(default_factory=list)
    ensemble_members: list[dict] = field(default_factory=list)
    #: logged impressions: rows trained through the position bias, and the bias learned per position
    shown_rows: int = 0
    position_bias: list[float] | None = None
    #: the search ranker's: its input names and the candidate settings it was trained with
    inputs: dict[str, list[str]] | None = None
    search_config: dict[str, Any] | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    #: anything else worth reading beside the model (index manifest, score kind, keys of older cards)
    notes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    def write(self, version_dir: Path) -> Path:
        """Into a model version's folder, where TF Serving ignores it and serving reads it (`CARD_FILE`)."""
        path = Path(version_dir) / CARD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        if not isinstance(data, dict) or not isinstance(data.get("model"), str):
            raise ValueError(f"a model card is a JSON object with a string `model`; got {str(data)[:80]!r}")
        known = {f.name for f in fields(cls)}
        card = cls(**{k: v for k, v in data.items() if k in known})
        card.notes = {**card.notes, **{k: v for k, v in data.items() if k not in known}}
        return card

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        return cls.from_dict(json.loads(text))


__all__ = ["CARD_FILE", "ModelCard"]
