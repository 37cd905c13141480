"""Blessing: does a candidate model deserve production?

Rules are values in configuration (`BlessingRules`), never in the step code. A candidate must
clear the absolute floors, beat every baseline named in `must_beat` (the recommenders of
`evaluation.baselines`, computed by the evaluate step on the same held-out period through the same
metric code) by `min_gain_over_baseline` (relative) on the deciding metric, and, when a production
model exists, not fall more than
`max_regression_vs_production` (relative) below it on the same held-out period. The very first
model has no production model to compare with and is judged on the floors and the baseline alone.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

DEFAULT_RULES = Path(__file__).with_name("blessing.toml")
SEARCH_RULES = Path(__file__).with_name("search_blessing.toml")  # the search ranker's
SEQUENCE_RULES = Path(__file__).with_name("sequence_blessing.toml")  # the sequence model's


@dataclass(frozen=True)
class BlessingRules:
    metric: str = "recall@20"
    min_metric: float = 0.05
    min_auc: float = 0.6
    min_gain_over_baseline: float = 0.0
    max_regression_vs_production: float = 0.02
    must_beat: tuple[str, ...] = ("popularity",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "must_beat", tuple(self.must_beat))  # TOML gives a list


def load_rules(path: str | Path | None = None) -> BlessingRules:
    """Rules from a TOML file: `path`, else SHOPRANK_BLESSING_RULES, else the packaged defaults."""
    source = Path(path or os.environ.get("SHOPRANK_BLESSING_RULES") or DEFAULT_RULES)
    values = tomllib.loads(source.read_text())
    unknown = set(values) - {f.name for f in fields(BlessingRules)}
    if unknown:
        raise ValueError(f"{source}: unknown blessing rule(s) {sorted(unknown)}")
    return BlessingRules(**values)


@dataclass
class Verdict:
    blessed: bool
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def bless(candidate: dict[str, float], baselines: dict[str, dict[str, float]], production: dict[str, float] | None,
          rules: BlessingRules, production_note: str | None = None) -> Verdict:
    """Apply every rule and say which passed and which failed, with the numbers.

    `baselines` maps a baseline's name to its metrics; a name in `rules.must_beat` that is missing
    is an error (a rule that silently checks nothing would bless anything). `production_note` says
    why there are no production figures (none pushed yet, or it could not be scored).
    """
    m = rules.metric
    checks: list[tuple[bool, str]] = [
        (candidate[m] >= rules.min_metric, f"{m} {candidate[m]:.4f} >= floor {rules.min_metric:.4f}")]
    if "auc" in candidate:
        checks.append((candidate["auc"] >= rules.min_auc, f"auc {candidate['auc']:.4f} >= floor {rules.min_auc:.4f}"))
    elif rules.min_auc > 0:  # a floor on a figure the evaluation did not produce must not pass silently
        checks.append((False, f"auc not measured, but the rules set a floor of {rules.min_auc:.4f}"))
    missing = [name for name in rules.must_beat if name not in baselines]
    if missing:
        raise KeyError(f"blessing rules name baseline(s) {missing} the evaluation did not compute "
                       f"(it has {sorted(baselines)})")
    for name in rules.must_beat:
        needed = baselines[name][m] * (1 + rules.min_gain_over_baseline)
        checks.append((candidate[m] >= needed, f"{m} {candidate[m]:.4f} >= {name} baseline {baselines[name][m]:.4f} "
                                               f"x (1 + {rules.min_gain_over_baseline:.2f}) = {needed:.4f}"))
    if production is not None:
        floor = production[m] * (1 - rules.max_regression_vs_production)
        checks.append((candidate[m] >= floor, f"{m} {candidate[m]:.4f} >= production {production[m]:.4f} "
                                              f"x (1 - {rules.max_regression_vs_production:.2f}) = {floor:.4f}"))
    else:
        note = production_note or "no production model yet"
        checks.append((True, f"{note}: judged on floors and baseline alone"))
    return Verdict(blessed=all(ok for ok, _ in checks),
                   reasons=[("PASS " if ok else "FAIL ") + text for ok, text in checks])
