"""The validation gate: Great Expectations suites per table, severities and thresholds from
gate.toml, verdicts with offending rows, Data Docs per run, drift/volume state of accepted batches.

Names are resolved lazily: importing Great Expectations takes seconds, and `shoprank --help`
(which imports `shoprank.validation.cli` to register `shoprank validate`) must not pay for it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "run_gate": "gate", "run_gate_source": "gate", "accept_batch": "gate", "load_state": "gate",
    "GateResult": "gate", "GateFailed": "gate", "Finding": "report", "GateConfig": "config",
    "load_config": "config",
}
__all__ = ["Finding", "GateConfig", "GateFailed", "GateResult", "accept_batch", "load_config", "load_state",
           "run_gate", "run_gate_source"]

if TYPE_CHECKING:
    # deferred: the gate imports Great Expectations (seconds), which most importers of the package never use
    from shoprank.validation.config import GateConfig, load_config
    from shoprank.validation.gate import GateFailed, GateResult, accept_batch, load_state, run_gate, run_gate_source
    from shoprank.validation.report import Finding


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"shoprank.validation.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'shoprank.validation' has no attribute {name!r}")
