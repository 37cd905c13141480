"""The nightly run's parameters, defined once: the KFP pipeline's defaults, the Airflow DAG's params
(with their descriptions in the UI), `shoprank run`'s options and the demo all come from here, so
changing a default cannot leave one of them behind."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from shoprank.serving import SERVED_LABEL

SOURCES = ["tafeng", "rees46", "synthetic", "canonical", "served"]


def _param(default: Any, description: str, **schema: Any) -> Any:
    return field(default=default, metadata={"description": description, "schema": schema})


@dataclass(frozen=True)
class NightlyParams:
    source: str = _param("tafeng", "Which source adapter reads the raw data.", enum=SOURCES)
    source_path: str = _param("", "Raw file or folder (empty: the source's default).")
    interval_start: str = _param("2000-11-01", "Data interval start (ISO date).")
    interval_end: str = _param("2001-03-01", "Data interval end (ISO date, exclusive).")
    n_snapshots: int = _param(6, "Weekly feature snapshots before the interval end.", minimum=4)
    max_users_per_cutoff: int = _param(10000, "Training users sampled per label cut-off.", minimum=10)
    epochs: int = _param(6, "Training epochs (early stopping on validation NDCG@10).", minimum=1)
    sequence_epochs: int = _param(8, "Sequence model epochs (early stopping on held-out sequences).", minimum=1)
    seed: int = _param(0, "Random seed of the sampling and the first ensemble member.")
    search_trials: int = _param(0, "Random hyperparameter search trials before training (0: off).", minimum=0)
    ensemble: int = _param(3, "Rankers trained from different seeds; the served score is their mean.", minimum=1)
    push_label: str = _param(SERVED_LABEL, "Label the pushed version gets (stable, canary, ...).")

    def arguments(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


DEFAULTS = NightlyParams()
#: The params the private stage reads (where the data comes from, its interval, the snapshot times
#: derived from it); the others are the public pipeline's, which starts from the crossing instead.
PRIVATE_PARAMS = ("source", "source_path", "interval_start", "interval_end", "n_snapshots")
#: The pipeline's one data input: the manifest key of the crossing the private stage wrote.
CROSSING_KEY = "crossing_key"


def pipeline_arguments(arguments: dict[str, Any], crossing_key: str) -> dict[str, Any]:
    """The public pipeline's arguments: the night's params without the private stage's, plus the
    crossing it starts from."""
    return {k: v for k, v in arguments.items() if k not in PRIVATE_PARAMS} | {CROSSING_KEY: crossing_key}

# Not a user parameter: the orchestrator's run id, passed to the pipeline so that its evaluate step
# records the blessing verdict where the orchestrator can read it (shoprank.orchestration.verdicts).
RUN_KEY = "run_key"


def describe(name: str) -> tuple[Any, str, dict[str, Any]]:
    """(default, description, JSON-schema extras) of one parameter, for the DAG's Params."""
    spec = next(f for f in fields(NightlyParams) if f.name == name)
    return spec.default, spec.metadata["description"], dict(spec.metadata["schema"])


def run_arguments(params: dict[str, Any], interval_start: str, interval_end: str) -> dict[str, Any]:
    """The pipeline arguments of one orchestrated run: its params, the interval overrides falling
    back to the run's own data interval (ISO dates)."""
    chosen = {name: params.get(name, getattr(DEFAULTS, name)) for name in DEFAULTS.arguments()}
    chosen["interval_start"] = chosen["interval_start"] or interval_start
    chosen["interval_end"] = chosen["interval_end"] or interval_end
    return NightlyParams(**chosen).arguments()
