"""Online experiments as configuration: which arms a route serves, to whom, and for how long.

An experiment runs on one route (`recommend` or `search`) and names its arms: a model label or
version per arm, or `interleave` (a team-draft list of two labels), with traffic shares. Every
experiment document lives in the model store (`EXPERIMENTS_KEY`), published whole with a
compare-and-swap, read by every API replica and by the hourly evaluation: one place that says what
traffic gets, so the answer's arm and the analysis' arm cannot disagree.

Assignment is a hash of the experiment's salt and the shopper's pseudonym (`assign`): the same
shopper always lands in the same arm of one experiment, and two experiments with different salts
split shoppers independently. A request with neither a pseudonym nor an anonymous id is not in any
experiment (the control answer).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

from shoprank.storage import ObjectStore

EXPERIMENTS_KEY = "experiments/experiments.json"
EXPERIMENT_LOG = "experiments/decisions.jsonl"
ROUTES = ("recommend", "search")
STATUSES = ("running", "promoted", "rolled_back", "stopped", "broken")
BUCKETS = 10_000  # shares are resolved to 0.01%
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ExperimentError(ValueError):
    """An experiment document that cannot be served: which experiment, which field, what was expected."""


@dataclass(frozen=True)
class Arm:
    """One arm: the ranker it serves (`label`, or a pinned `version`), or an interleaved list of two
    labels (`interleave`), and its share of the experiment's traffic."""

    name: str
    share: float
    label: str | None = None
    version: int | None = None
    interleave: tuple[str, str] | None = None
    # the arm's own merchandising rule set, served instead of the live one: the rules file's TOML
    # text, or its tables as a JSON object (no dated windows: JSON has no date-time); None: the live set
    rules: str | Mapping | None = None
    # candidate settings served instead of the model card's (`CANDIDATE_SETTINGS[route]` names them)
    candidates: Mapping[str, int] | None = None

    @property
    def serves(self) -> str:
        if self.interleave:
            ranker = f"interleave({self.interleave[0]}, {self.interleave[1]})"
        else:
            ranker = f"v{self.version}" if self.version is not None else f"label {self.label}"
        extra = [f"{k}={v}" for k, v in sorted((self.candidates or {}).items())]
        return " ".join([ranker, *extra, *(["own rules"] if self.rules is not None else [])])

    def as_dict(self) -> dict:
        """The JSON form: only the fields given (an arm without rules says nothing about rules)."""
        out = {"name": self.name, "share": self.share}
        for key in ("label", "version", "interleave", "rules", "candidates"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if key == "interleave" else dict(value) if isinstance(value, Mapping) else value
        return out


@dataclass(frozen=True)
class Experiment:
    name: str
    route: str
    model: str  # the model whose labels the arms name (ranker, search_ranker)
    salt: str
    arms: tuple[Arm, ...]
    control: str  # the arm that serves what `stable` serves now
    started_at: str  # ISO 8601, UTC
    max_hours: float = 24.0
    max_requests: int = 200_000  # per experiment: past it, a run without a verdict stops with "no difference"
    primary: str = "purchases_per_request"
    attribution_hours: float = 24.0  # a purchase counts for the arm of a shopper exposed in the hours before it
    alpha: float = 0.05
    expected_lift: float = 0.05  # the mSPRT's mixing scale, relative to the control's mean
    guardrails: Mapping[str, float] = field(default_factory=lambda: dict(GUARDRAILS))
    status: str = "running"
    decided_at: str | None = None
    decision: str | None = None

    @property
    def candidate(self) -> Arm:
        """The arm under test: the first that is not the control."""
        return next(a for a in self.arms if a.name != self.control)

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["guardrails"] = dict(self.guardrails)
        out["arms"] = [a.as_dict() for a in self.arms]
        return out


#: The candidate arm against the control: a breach of any rolls the candidate back at once.
#: p99 latency (ms) and the shares are absolute limits on the candidate arm; the differences are
#: candidate minus control.
GUARDRAILS = {"p99_latency_ms": 250.0, "error_rate": 0.01, "empty_answer_rate": 0.02,
              "error_rate_vs_control": 0.005}

#: What an arm's `candidates` may set, per route, with the least each takes: the recommender's
#: candidate sources (the training set's settings) and search's lexical candidates per query.
CANDIDATE_SETTINGS = {
    "recommend": {"n_popular": 0, "max_user_items": 0, "n_cooc": 0, "n_knn": 0, "n_sequence": 0},
    "search": {"lexical_n": 1},
}
MAX_CANDIDATE_SETTING = 2_000  # more candidates than this would take a request past its deadline


def _where(name: str, what: str) -> str:
    return f"experiment {name!r}: {what}"


def parse_experiment(data: Mapping) -> Experiment:
    """An experiment from its JSON form, checked; ExperimentError names the field and what it expects."""
    if not isinstance(data, Mapping):
        raise ExperimentError(f"an experiment must be a JSON object, got {type(data).__name__}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ExperimentError(f"experiment name {name!r}: expected 1-63 of a-z, 0-9, _ and -")
    route = data.get("route")
    if route not in ROUTES:
        raise ExperimentError(_where(name, f"route {route!r}: expected one of {list(ROUTES)}"))
    raw_arms = data.get("arms")
    if not isinstance(raw_arms, Sequence) or isinstance(raw_arms, str) or len(raw_arms) < 2:
        raise ExperimentError(_where(name, "arms: expected a list of at least two arms"))
    arms = tuple(_arm(name, route, i, a) for i, a in enumerate(raw_arms))
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ExperimentError(_where(name, f"arm names repeat: {names}"))
    total = sum(a.share for a in arms)
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ExperimentError(_where(name, f"arm shares add up to {total:g}: expected 1"))
    control = data.get("control", names[0])
    if control not in names:
        raise ExperimentError(_where(name, f"control {control!r} is not an arm: {names}"))
    status = data.get("status", "running")
    if status not in STATUSES:
        raise ExperimentError(_where(name, f"status {status!r}: expected one of {list(STATUSES)}"))
    known = {f for f in Experiment.__dataclass_fields__}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ExperimentError(_where(name, f"unknown field(s) {unknown}; expected only {sorted(known)}"))
    guardrails = {**GUARDRAILS, **dict(data.get("guardrails") or {})}
    bad = sorted(set(guardrails) - set(GUARDRAILS))
    if bad:
        raise ExperimentError(_where(name, f"unknown guardrail(s) {bad}; known: {sorted(GUARDRAILS)}"))
    fields_ = {k: data[k] for k in ("max_hours", "max_requests", "primary", "attribution_hours", "alpha",
                                    "expected_lift", "decided_at", "decision") if k in data}
    experiment = Experiment(name=name, route=route, model=str(data.get("model") or _model_of(route)),
                            salt=str(data.get("salt") or name), arms=arms, control=control,
                            started_at=str(data.get("started_at") or _now()), guardrails=guardrails,
                            status=status, **fields_)
    if EXPERIMENT_MODELS.get(experiment.model) != route:
        raise ExperimentError(_where(name, f"model {experiment.model!r} does not serve /{route}: expected "
                                           f"{_model_of(route)!r}"))
    if experiment.primary not in PRIMARY_METRICS:
        raise ExperimentError(_where(name, f"primary {experiment.primary!r}: expected one of {list(PRIMARY_METRICS)}"))
    if not 0 < experiment.alpha < 0.5 or experiment.max_hours <= 0 or experiment.max_requests <= 0:
        raise ExperimentError(_where(name, "alpha must be in (0, 0.5), max_hours and max_requests > 0"))
    return experiment


PRIMARY_METRICS = ("purchases_per_request", "revenue_per_request", "ctr")


#: The model each route's arms name by label or version.
EXPERIMENT_MODELS = {"ranker": "recommend", "search_ranker": "search"}


def _model_of(route: str) -> str:
    return next(model for model, on in EXPERIMENT_MODELS.items() if on == route)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _arm(experiment: str, route: str, index: int, data: object) -> Arm:
    where = f"arm {index}"
    if not isinstance(data, Mapping):
        raise ExperimentError(_where(experiment, f"{where}: expected an object"))
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ExperimentError(_where(experiment, f"{where}: name {name!r}: expected 1-63 of a-z, 0-9, _ and -"))
    share = data.get("share")
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise ExperimentError(_where(experiment, f"arm {name!r}: share {share!r}: expected a number in (0, 1]"))
    label, version, interleave = data.get("label"), data.get("version"), data.get("interleave")
    given = [x is not None for x in (label, version, interleave)]
    if sum(given) != 1:
        raise ExperimentError(_where(experiment, f"arm {name!r}: give exactly one of label, version or interleave"))
    if interleave is not None:
        if (not isinstance(interleave, Sequence) or isinstance(interleave, str) or len(interleave) != 2
                or len(set(interleave)) != 2 or not all(isinstance(x, str) and x for x in interleave)):
            raise ExperimentError(_where(experiment, f"arm {name!r}: interleave expects two different labels"))
        interleave = (str(interleave[0]), str(interleave[1]))
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ExperimentError(_where(experiment, f"arm {name!r}: version {version!r}: expected a whole number >= 1"))
    if label is not None and (not isinstance(label, str) or not _NAME.match(label)):
        raise ExperimentError(_where(experiment, f"arm {name!r}: label {label!r}: expected a label name"))
    unknown = sorted(set(data) - {"name", "share", "label", "version", "interleave", "rules", "candidates"})
    if unknown:
        raise ExperimentError(_where(experiment, f"arm {name!r}: unknown field(s) {unknown}"))
    rules = data.get("rules")
    if rules is not None and not isinstance(rules, str | Mapping):
        raise ExperimentError(_where(experiment, f"arm {name!r}: rules: expected the rule set's TOML text or an "
                                                 f"object of its tables, got {type(rules).__name__}"))
    return Arm(name=name, share=float(share), label=label, version=version, interleave=interleave,
               rules=dict(rules) if isinstance(rules, Mapping) else rules,
               candidates=_candidates(experiment, route, name, data.get("candidates")))


def _candidates(experiment: str, route: str, arm: str, given: object) -> dict[str, int] | None:
    """An arm's candidate settings, each known to the route and a whole number in its range."""
    if given is None:
        return None
    allowed = CANDIDATE_SETTINGS[route]
    if not isinstance(given, Mapping) or not given:
        raise ExperimentError(_where(experiment, f"arm {arm!r}: candidates: expected an object of settings, "
                                                 f"some of {sorted(allowed)}"))
    out = {}
    for key, value in given.items():
        if key not in allowed:
            raise ExperimentError(_where(experiment, f"arm {arm!r}: candidates: {key!r} is not a /{route} "
                                                     f"candidate setting; expected some of {sorted(allowed)}"))
        least = allowed[key]
        if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= MAX_CANDIDATE_SETTING:
            raise ExperimentError(_where(experiment, f"arm {arm!r}: candidates.{key} = {value!r}: expected a whole "
                                                     f"number from {least} to {MAX_CANDIDATE_SETTING}"))
        out[str(key)] = value
    return out


def bucket(salt: str, unit: str) -> int:
    """The unit's bucket in [0, BUCKETS) under `salt`: SHA-256 of both, so uniform, stable and
    independent across salts (no experiment's split leaks into another's)."""
    digest = hashlib.sha256(f"{salt}\x1f{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign(experiment: Experiment, unit: str | None) -> Arm | None:
    """The arm `unit` (a pseudonym or a client's anonymous id) is in; None for no unit (the control's
    answer, outside the experiment)."""
    if not unit:
        return None
    point, edge = bucket(experiment.salt, unit), 0.0
    for arm in experiment.arms:
        edge += arm.share * BUCKETS
        if point < round(edge):
            return arm
    return experiment.arms[-1]


def canary_experiment(model: str, started_at: datetime, share: float = 0.1, hours: float = 24.0,
                      version: int | None = None) -> Experiment:
    """What a push to `canary` starts: `share` of the route's shoppers on the canary for `hours`."""
    route = EXPERIMENT_MODELS[model]
    stamp = started_at.strftime("%Y%m%dt%H%M%S")
    name = f"canary-{model.replace('_', '-')}-{f'v{version}-' if version else ''}{stamp}"
    return parse_experiment({"name": name, "route": route, "model": model, "salt": name,
                             "arms": [{"name": "control", "label": "stable", "share": round(1 - share, 6)},
                                      {"name": "canary", "label": "canary", "share": share}],
                             "control": "control", "started_at": started_at.isoformat(timespec="seconds"),
                             "max_hours": hours, **({"decision": f"canary v{version}"} if version else {})})


# --- the document in the store -------------------------------------------------------------------------


def read_experiments(store: ObjectStore) -> list[Experiment]:
    """Every experiment in the store's document (none when there is no document)."""
    found = store.read_versioned(EXPERIMENTS_KEY)
    return parse_document(found[0]) if found else []


def parse_document(raw: bytes) -> list[Experiment]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExperimentError(f"{EXPERIMENTS_KEY}: not JSON: {err}") from err
    items = data.get("experiments") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise ExperimentError(f"{EXPERIMENTS_KEY}: expected an object with a list `experiments`")
    experiments = [parse_experiment(item) for item in items]
    running = [e for e in experiments if e.status == "running"]
    for route in ROUTES:
        on_route = [e.name for e in running if e.route == route]
        if len(on_route) > 1:
            raise ExperimentError(f"{EXPERIMENTS_KEY}: more than one running experiment on /{route}: {on_route}")
    return experiments


def write_experiment(store: ObjectStore, experiment: Experiment) -> list[Experiment]:
    """Add `experiment`, or replace the one of that name, with a compare-and-swap (retried when
    another writer got there first); the document after the write. A second running experiment on
    the same route is refused and nothing is written."""
    for _ in range(5):
        found = store.read_versioned(EXPERIMENTS_KEY)
        current = parse_document(found[0]) if found else []
        updated = [e for e in current if e.name != experiment.name] + [experiment]
        text = json.dumps({"experiments": [e.as_dict() for e in updated]}, indent=2).encode()
        parse_document(text)  # refuse a document no replica could serve
        if store.put_if(EXPERIMENTS_KEY, text, found[1] if found else None) is not None:
            return updated
    raise ExperimentError(f"{EXPERIMENTS_KEY} kept changing under five tries to write {experiment.name!r}")


def running(experiments: Sequence[Experiment], route: str) -> Experiment | None:
    return next((e for e in experiments if e.status == "running" and e.route == route), None)


def closed(experiment: Experiment, status: str, decision: str, at: datetime) -> Experiment:
    """The experiment ended with `status` (it serves nobody from then on)."""
    if status not in STATUSES or status == "running":
        raise ExperimentError(f"an experiment ends promoted, rolled_back, stopped or broken, not {status!r}")
    return replace(experiment, status=status, decision=decision, decided_at=at.isoformat(timespec="seconds"))
