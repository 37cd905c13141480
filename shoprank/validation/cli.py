"""`shoprank validate PATH`: the nightly gate, on demand, on a file or a folder.

Exit codes: 0 the gate passed, 1 the gate failed, 2 the input could not be read (the one-line
reason goes to stderr, no traceback). By default the standalone gate compares with nothing (drift
and volume are skipped); `--state-dir` points it at the state of accepted batches, e.g. the
pipeline's `$SHOPRANK_HOME/validation`, which it only reads: `validate` never accepts a batch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shoprank.data.errors import InputError
from shoprank.settings import load_settings

SOURCES = ("tafeng", "rees46", "canonical")


def add_validate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `validate` on the shoprank CLI (returns the sub-parser; the caller sets func)."""
    parser = subparsers.add_parser(
        "validate", help="run the data validation gate on a file or folder (exit 0 pass, 1 fail, 2 unreadable)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="a canonical batch folder, a canonical events .parquet, a Ta Feng "
                        "CSV/zip or a REES46 CSV")
    parser.add_argument("--source", choices=SOURCES, default=None,
                        help="format of PATH (default: guessed from the path and the CSV header)")
    parser.add_argument("--config", type=Path, default=None, help="a TOML file overriding gate.toml entries")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="accepted-batch state to check drift and volume against (read only)")
    parser.add_argument("--reports-dir", type=Path, default=None,
                        help="where the run's summary and Data Docs go (default: $SHOPRANK_HOME/reports/validation)")
    parser.add_argument("--start", default=None, help="data interval start (UTC), e.g. 2000-11-01")
    parser.add_argument("--end", default=None, help="data interval end (UTC, exclusive), e.g. 2001-03-01")
    parser.set_defaults(func=run_validate)
    return parser


def guess_source(path: Path) -> str:
    """canonical for a folder or .parquet; tafeng for a .zip or a TRANSACTION_DT header; else rees46."""

    if path.is_dir() or path.suffix == ".parquet":
        return "canonical"
    if path.suffix.lower() == ".zip":
        return "tafeng"
    if not path.exists():
        raise InputError(path, "no such file or folder")
    with path.open("rb") as fh:
        head = fh.readline(4096).decode("utf-8", errors="replace")
    if "TRANSACTION_DT" in head:
        return "tafeng"
    if "event_time" in head and "product_id" in head:
        return "rees46"
    raise InputError(path, "cannot tell the source format from the header", line=1,
                     expected="a Ta Feng or REES46 header (or pass --source)", found=head.strip()[:80])


def run_validate(args: argparse.Namespace) -> int:

    path = Path(args.path)
    try:
        source = args.source or guess_source(path)
        reports = args.reports_dir
        if reports is None:

            reports = load_settings().reports_dir / "validation"
        from shoprank.validation.gate import run_gate_source

        result = run_gate_source(source, path, interval_start=args.start, interval_end=args.end,
                                 state_dir=args.state_dir, reports_dir=reports, config_path=args.config)
    except InputError as err:
        print(f"error: unreadable input: {err}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as err:
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    print(result.summary, flush=True)
    return 0 if result.passed else 1


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (the lead wires the same parser into `shoprank`)."""
    parser = argparse.ArgumentParser(prog="shoprank")
    add_validate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
