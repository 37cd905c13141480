"""The gate's configuration: severities and thresholds live in gate.toml, not in code.

`load_config()` reads the packaged defaults; an override file is merged on top, entry by entry,
so a site changes one threshold without copying the rest. Unknown entries, misspelt keys and
impossible values are refused with an `InputError` naming the file and key: a typo must not
silently disable a check.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoprank.data.errors import InputError

DEFAULT_CONFIG = Path(__file__).with_name("gate.toml")
SEVERITIES = ("fail", "warn", "off")
_RUN_KEYS = {"chunk_rows", "sample_rows", "keep_reports", "future_tolerance_minutes", "history_days"}


@dataclass(frozen=True)
class CheckConfig:
    """One check's strictness: its severity, `mostly` for row-level checks, and named limits."""

    id: str
    severity: str
    mostly: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.severity != "off"

    def __getitem__(self, key: str) -> Any:
        return self.params[key]


@dataclass(frozen=True)
class GateConfig:
    """The merged configuration plus where it came from (quoted in reports)."""

    run: dict[str, Any]
    checks: dict[str, CheckConfig]
    sources: tuple[str, ...]

    def check(self, check_id: str) -> CheckConfig:
        return self.checks[check_id]


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "no such configuration file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, f"not valid TOML ({err})", expected="a gate configuration like gate.toml") from None


def _validate_check(path: Path, check_id: str, entry: dict[str, Any], defaults: dict[str, Any] | None) -> None:
    where = f"checks.{check_id!r}"
    if defaults is None:
        raise InputError(path, f"unknown check {check_id!r}", field=where,
                         expected="one of the checks in the packaged gate.toml")
    for key, value in entry.items():
        if key not in defaults:
            raise InputError(path, f"unknown setting {key!r}", field=where,
                             expected="one of " + ", ".join(sorted(defaults)))
        if key == "severity" and value not in SEVERITIES:
            raise InputError(path, "invalid severity", field=f"{where}.severity", expected=" | ".join(SEVERITIES),
                             found=value)
        if key == "mostly" and not (isinstance(value, int | float) and 0 <= value <= 1):
            raise InputError(path, "invalid mostly", field=f"{where}.mostly", expected="a number in [0, 1]",
                             found=value)
        if key != "severity" and type(defaults[key]) in (int, float) and (
                not isinstance(value, int | float) or isinstance(value, bool) or value < 0):
            raise InputError(path, f"invalid {key}", field=f"{where}.{key}", expected="a number >= 0", found=value)


def load_config(path: str | Path | None = None) -> GateConfig:
    """The packaged defaults, with `path` (if given) merged over them and checked."""
    base = _read(DEFAULT_CONFIG)
    sources = [str(DEFAULT_CONFIG)]
    run = dict(base.get("run", {}))
    checks: dict[str, dict[str, Any]] = {k: dict(v) for k, v in base.get("checks", {}).items()}
    if path is not None:
        path = Path(path)
        override = _read(path)
        sources.append(str(path))
        for key in override:
            if key not in ("run", "checks"):
                raise InputError(path, f"unknown section [{key}]", expected="[run] or [checks.\"...\"]")
        for key, value in override.get("run", {}).items():
            if key not in _RUN_KEYS:
                raise InputError(path, f"unknown setting {key!r}", field="run", expected=", ".join(sorted(_RUN_KEYS)))
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InputError(path, f"invalid {key}", field=f"run.{key}", expected="an integer >= 0", found=value)
            run[key] = value
        for check_id, entry in override.get("checks", {}).items():
            if not isinstance(entry, dict):
                raise InputError(path, "a check entry must be a table", field=f"checks.{check_id!r}")
            _validate_check(path, check_id, entry, checks.get(check_id))
            checks[check_id].update(entry)
    parsed = {
        check_id: CheckConfig(
            id=check_id,
            severity=entry["severity"],
            mostly=entry.get("mostly"),
            params={k: v for k, v in entry.items() if k not in ("severity", "mostly")},
        )
        for check_id, entry in checks.items()
    }
    return GateConfig(run=run, checks=parsed, sources=tuple(sources))
