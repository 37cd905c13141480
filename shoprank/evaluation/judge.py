"""One judge for every model the nightly may promote: the candidate and the production model are
scored on the same rows by the same function, the rules decide, and the outcome is one typed
`Evaluation` that the pipeline records (metrics, the blessing artifact, the run's verdict).

Why: the ranker and the search ranker were judged by two copies of this logic, each swallowing the
production model's scoring errors. Here a production model that cannot be scored on tonight's rows
(an older signature) is an outcome with its reason, written into the blessing's reasons, never a
silent skip.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from shoprank.evaluation.blessing import BlessingRules, Verdict, bless

Scores = dict[str, float]
ProductionOutcome = Literal["scored", "none", "not_scored"]
#: What scoring a production model built for other inputs raises (a missing input, a dtype it refuses).
NOT_COMPARABLE = (KeyError, ValueError, TypeError)


@dataclass
class Evaluation:
    model: str
    candidate: Scores
    baselines: dict[str, Scores]
    rules: BlessingRules
    verdict: Verdict
    production: Scores | None = None
    production_version: int | None = None
    production_outcome: ProductionOutcome = "none"
    production_reason: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # served lists, infra-validation, the serving decision

    @property
    def blessed(self) -> bool:
        return self.verdict.blessed

    @property
    def reasons(self) -> list[str]:
        return self.verdict.reasons

    def as_dict(self) -> dict[str, Any]:
        """The JSON the blessing artifact and the run's verdict hold."""
        return {"model": self.model, "blessed": self.blessed, "reasons": self.reasons, "candidate": self.candidate,
                "baselines": self.baselines, "production": self.production,
                "production_version": self.production_version, "production_outcome": self.production_outcome,
                "production_reason": self.production_reason, "rules": asdict(self.rules), "facts": self.facts,
                **self.extra}

    def record(self, metrics: Any, blessing: Any) -> str:
        """Log the figures as KFP metrics and fill the blessing artifact (TFX's ModelBlessing: the
        outcome in `metadata["blessed"]`, the whole evaluation in its file); "blessed" or "rejected"
        for the pipeline's condition. `metrics` and `blessing` are KFP output artifacts."""
        for key, value in self.candidate.items():
            _log(metrics, key, value)
        for name, values in self.baselines.items():
            for key, value in values.items():
                _log(metrics, f"{name}_{key}", value)
        for key, value in ((self.extra.get("served_lists") or {}).get("candidate") or {}).items():
            _log(metrics, f"served_{key}", value)  # the held-out period's served lists
        estimated = (self.extra.get("off_policy") or {}).get("candidate") or {}
        for key in ("purchases_per_list_logged", "purchases_per_list_ips", "ips_minus_logged"):
            _log(metrics, f"off_policy_{key}", estimated.get(key))  # before any traffic: reported beside them
        Path(blessing.path).parent.mkdir(parents=True, exist_ok=True)
        Path(blessing.path).write_text(json.dumps(self.as_dict(), indent=2, default=str))
        blessing.metadata.update({"blessed": self.blessed, "reasons": self.reasons, "candidate": self.candidate,
                                  "production_version": self.production_version,
                                  "production_outcome": self.production_outcome})
        print("\n".join(self.reasons), flush=True)
        return "blessed" if self.blessed else "rejected"


def _log(metrics: Any, key: str, value: Any) -> None:
    if isinstance(value, int | float) and value == value:  # NaN (an AUC over lists without a purchase) is no metric
        metrics.log_metric(key, float(value))


def judge(model: str, score: Callable[[str], Scores], candidate_dir: str | Path, baselines: dict[str, Scores],
          rules: BlessingRules, production: tuple[str, int] | None, facts: dict[str, Any] | None = None) -> Evaluation:
    """Score the candidate, then production (its local folder and version, None when none was
    pushed) with the same `score`, and apply the rules."""
    candidate = score(str(candidate_dir))
    scored, version, outcome, reason = None, None, "none", "no production model yet"
    if production is not None:
        version = production[1]
        try:
            scored, outcome, reason = score(production[0]), "scored", None
        except NOT_COMPARABLE as err:
            outcome = "not_scored"
            reason = f"production v{version} cannot be scored on these rows ({type(err).__name__}: {err})"
            print(f"judge {model}: {reason}; judged without it", flush=True)
    verdict = bless(candidate, baselines, scored, rules, production_note=reason)
    return Evaluation(model, candidate, baselines, rules, verdict, scored, version, outcome, reason, dict(facts or {}))
