"""What the data engineer reads: a plain-text summary and Great Expectations Data Docs.

The summary is written for a terminal and the Airflow task log: the verdict first, then one block
per finding (table, check, GE expectation, expected vs observed, a few offending rows with their
file and line), failures before warnings before notes. Data Docs (HTML) are built from the same
outcomes, one validation page per table, into the run's own folder so every night's evidence is
kept next to its summary.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

SEVERITY_ORDER = {"fail": 0, "warn": 1, "info": 2}
_STAMP = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")


@dataclass(frozen=True)
class Finding:
    """One thing the data engineer should know about the batch.

    severity: "fail" (the gate stops the run), "warn" (reported, the run goes on) or "info"
    (a skipped check, or exceptions within the tolerance `mostly` allows).
    """

    severity: str
    table: str
    check: str
    expectation: str
    expected: str
    observed: str
    samples: tuple[str, ...] = ()

    def render(self) -> str:
        head = f"{self.severity.upper():<4}  {self.table:<6} {self.check}"
        if self.expected == "-":  # a note, not a judged expectation
            return f"{head}: {self.observed}"
        lines = [f"{head}  [{self.expectation}]", f"      expected: {self.expected}",
                 f"      observed: {self.observed}"]
        lines += [f"        {s}" for s in self.samples]
        return "\n".join(lines)


@dataclass
class Outcome:
    """One evaluated expectation as Data Docs shows it."""

    table: str
    check: str
    expectation: str
    kwargs: dict[str, Any]
    success: bool
    result: dict[str, Any]
    severity: str
    meta: dict[str, Any] = field(default_factory=dict)


def pct(part: int, whole: int) -> str:
    if whole == 0:
        return "0%"
    share = 100.0 * part / whole
    if share == 0 or share >= 10:
        return f"{share:.0f}%"
    if share >= 1:
        return f"{share:.1f}%"
    return f"{share:.2g}%"


def render_summary(*, passed: bool, findings: list[Finding], counts: dict[str, int], label: str,
                   interval: tuple[pd.Timestamp | None, pd.Timestamp | None], elapsed: float,
                   drift: dict[str, float], data_docs: Path | None, config_sources: tuple[str, ...]) -> str:
    n_fail = sum(f.severity == "fail" for f in findings)
    n_warn = sum(f.severity == "warn" for f in findings)
    verdict = "PASSED" if passed else "FAILED"
    tally = []
    if n_fail:
        tally.append(f"{n_fail} failing check{'s' * (n_fail != 1)}")
    if n_warn:
        tally.append(f"{n_warn} warning{'s' * (n_warn != 1)}")
    head = f"validation gate {verdict}" + (f": {', '.join(tally)}" if tally else "")
    rows = ", ".join(f"{name} {count:,}" for name, count in counts.items())
    lo, hi = interval
    span = f"{lo:%Y-%m-%d %H:%M} .. {hi:%Y-%m-%d %H:%M} UTC" if lo is not None and hi is not None else "not given"
    lines = [head, f"  batch {label}", f"  rows: {rows}   interval: {span}   checked in {elapsed:.1f} s"]
    if drift:
        lines.append("  drift PSI vs last accepted batch: "
                     + ", ".join(f"{k} {v:.3f}" for k, v in drift.items()))
    if len(config_sources) > 1:
        lines.append(f"  config: {' + '.join(config_sources)}")
    for finding in sorted(findings, key=lambda f: SEVERITY_ORDER[f.severity]):
        lines.append(finding.render())
    if data_docs is not None:
        lines.append(f"Data Docs: {data_docs}")
    if not passed:
        lines.append("The batch was NOT accepted: nothing downstream changes. Fix the data (or the thresholds "
                     "in gate.toml) and run again.")
    return "\n".join(lines)


def new_run_dir(reports_dir: Path, keep: int) -> Path:
    """reports_dir/<UTC stamp>/, unique; prune the oldest run folders beyond `keep` (0 = keep all)."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%SZ")
    run_dir, n = reports_dir / stamp, 1
    while run_dir.exists():
        run_dir, n = reports_dir / f"{stamp}-{n}", n + 1
    run_dir.mkdir()
    if keep:
        runs = sorted(p for p in reports_dir.iterdir() if p.is_dir() and _STAMP.match(p.name))
        for old in runs[: max(0, len(runs) - keep)]:
            shutil.rmtree(old, ignore_errors=True)
    return run_dir


def write_data_docs(context: Any, outcomes: list[Outcome], out_dir: Path, run_name: str,
                    batch_label: str) -> Path:
    """Store one validation result per table in the GE context and build the HTML site in out_dir."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    site = "shoprank_gate"
    context.add_data_docs_site(site, {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    run_id = RunIdentifier(run_name=run_name, run_time=pd.Timestamp.now(tz="UTC").to_pydatetime())
    for table in ("events", "items", "users"):
        mine = [o for o in outcomes if o.table == table]
        if not mine:
            continue
        results = []
        for o in mine:
            meta = {"check": o.check, "severity": o.severity,
                    "notes": {"format": "markdown", "content": [f"**{o.severity}** · gate.toml `{o.check}`"]}}
            meta.update(o.meta)
            config = ExpectationConfiguration(type=o.expectation, kwargs=o.kwargs, meta=meta)
            results.append(ExpectationValidationResult(success=o.success, expectation_config=config,
                                                       result=o.result))
        n_ok = sum(r.success for r in results)
        suite_name = f"shoprank.{table}"
        suite_result = ExpectationSuiteValidationResult(
            success=all(r.success for r in results), results=results, suite_name=suite_name,
            statistics={"evaluated_expectations": len(results), "successful_expectations": n_ok,
                        "unsuccessful_expectations": len(results) - n_ok,
                        "success_percent": 100.0 * n_ok / len(results)},
            meta={"run_id": run_id, "batch": batch_label,
                  "active_batch_definition": {"datasource_name": "shoprank", "data_asset_name": table,
                                              "batch_identifiers": {}}},
        )
        suite_id = ExpectationSuiteIdentifier(name=suite_name)
        key = ValidationResultIdentifier(expectation_suite_identifier=suite_id, run_id=run_id,
                                         batch_identifier=f"{table}-{run_name}")
        context.validation_results_store.store_validation_results(
            suite_validation_result=suite_result, suite_validation_result_identifier=key,
            expectation_suite_identifier=suite_id)
    context.build_data_docs(site_names=[site])
    return out_dir / "index.html"
