"""Typed errors for unreadable input, and the checked CSV reader that raises them.

A data engineer who feeds the system a broken file must learn *which file, which line or field,
and what was expected* in one sentence, never from a traceback. Adapters therefore read raw CSV
through `read_csv_checked`, which turns every way a text file can be unreadable (empty, header
only, wrong delimiter, missing column, bytes that are not UTF-8, a ragged or cut-off row, a field
of absurd size) into an `InputError`, and parse values with `parse_datetimes` / `parse_numbers`,
which do the same for dates and numbers that do not parse.

Two rules decide between "unreadable" and "dirty but readable":
- an empty field is a *missing value*: it becomes null and the validation gate judges it (a
  required field that is null fails the gate, with its line number);
- a non-empty field that cannot be parsed as its type, or a row with the wrong number of fields,
  makes the file unreadable: `InputError`, exit code 2 in the CLI.

One exception is deliberate: a *last* line that lacks its line end and has too few fields is the
signature of a file cut off while being written or copied (the public REES46 sample ends that
way). Failing the whole file for it would throw away every complete row, so the reader drops that
one line and records an `InputIssue` (check `truncated_last_line`), which the gate reports as a
finding with the severity the gate configuration gives it (warn by default).

The reader lives here rather than in an adapter because every CSV adapter needs the same rules.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

log = logging.getLogger("shoprank.data")

#: A field longer than this is treated as corrupt input (an unclosed quote or a binary blob).
MAX_FIELD_BYTES = 64 * 1024
#: pyarrow parses in blocks; a single row longer than a block cannot be parsed at all.
BLOCK_BYTES = 8 * 1024 * 1024
_DELIMITERS = {";": "';'", "\t": "a tab", "|": "'|'"}


def _clip(value: object, width: int = 60) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


class InputError(ValueError):
    """Input that cannot be read as the format it claims to be.

    Carries the file, the 1-based line (header = line 1) or None, the field (column) or None,
    what was expected and what was found, so callers can print one precise line.
    """

    def __init__(self, file: str | Path, problem: str, *, line: int | None = None, field: str | None = None,
                 expected: str | None = None, found: object | None = None) -> None:
        self.file = str(file)
        self.problem = problem
        self.line = line
        self.field = field
        self.expected = expected
        self.found = found
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = self.file
        if self.line is not None:
            where += f" line {self.line}"
        if self.field is not None:
            where += f", field {self.field!r}"
        text = f"{where}: {self.problem}"
        if self.expected is not None:
            text += f"; expected {self.expected}"
        if self.found is not None:
            text += f", found {_clip(self.found)}"
        return text


@dataclass(frozen=True)
class InputIssue:
    """Something an adapter recovered from; the gate turns it into a finding.

    `check` names the gate configuration entry (`source.<check>`) that sets its severity;
    `count`/`total` let the gate judge a rate against that entry's `mostly`.
    """

    check: str
    file: str
    message: str
    line: int | None = None
    field: str | None = None
    count: int | None = None
    total: int | None = None


class _TailTracker(io.RawIOBase):
    """Passes bytes through and remembers the last one, so we know whether the file ended with
    a line break without seeking (zip members cannot seek cheaply)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.last = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n:
            self.last = data[-1:]
        return n


def _opener(path: Path) -> tuple[str, Callable[[], IO[bytes]]]:
    """(label for messages, a function opening a fresh binary stream) for a CSV or a zip of one."""
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a folder", expected="a CSV file (or a zip holding one)")
    if path.suffix.lower() != ".zip":
        return str(path), lambda: open(path, "rb")
    try:
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if n.lower().endswith(".csv")]
    except zipfile.BadZipFile as err:
        raise InputError(path, f"not a readable zip archive ({err})", expected="a zip holding one CSV") from None
    if not members:
        raise InputError(path, "the zip holds no .csv file", expected="a zip holding one CSV")
    member = members[0]

    def open_member() -> IO[bytes]:
        zf = zipfile.ZipFile(path)
        return zf.open(member)

    return f"{path}!{member}", open_member


def source_label(path: str | Path) -> str:
    """How messages name a CSV source: the path, plus `!member` for the CSV inside a zip."""
    return _opener(Path(path))[0]


def _split_header(raw: bytes, label: str, encoding: str) -> list[str]:
    if not raw.strip():
        raise InputError(label, "the file is empty" if not raw else "the header line is blank", line=1,
                         expected="a header line naming the columns")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise InputError(label, f"bytes that are not {encoding} at byte {err.start + 1}", line=1,
                         expected=f"{encoding} text", found=raw[max(0, err.start - 10): err.end + 10]) from None
    return next(csv.reader([text.lstrip("\ufeff").rstrip("\r\n")]))


def _check_header(header: list[str], columns: Sequence[str], label: str) -> None:
    names = [h.strip() for h in header]
    missing = [c for c in columns if c not in names]
    if not missing:
        return
    if len(names) == 1:
        for delimiter, said in _DELIMITERS.items():
            if delimiter in names[0]:
                raise InputError(label, f"the header is separated by {said}, not by commas", line=1,
                                 expected="a comma-separated header " + ",".join(columns), found=names[0])
    raise InputError(label, f"missing column(s) {', '.join(missing)}", line=1, field=missing[0],
                     expected="columns " + ",".join(columns), found=",".join(names))


def _locate_bad_bytes(open_stream: Callable[[], IO[bytes]], label: str, encoding: str,
                      header: list[str]) -> InputError:
    """The rare error path: rescan line by line to name the first line that does not decode."""
    with open_stream() as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as err:
                fields = next(csv.reader([raw.decode(encoding, errors="replace").rstrip("\r\n")]), [])
                field = None
                for index, value in enumerate(fields):
                    if "\ufffd" in value and index < len(header):
                        field = header[index]
                        break
                return InputError(label, f"bytes that are not {encoding} at byte {err.start + 1} of the line",
                                  line=number, field=field, expected=f"{encoding} text",
                                  found=raw[max(0, err.start - 10): err.end + 10])
    return InputError(label, f"bytes that are not {encoding}", expected=f"{encoding} text")


def _locate_long_line(open_stream: Callable[[], IO[bytes]], label: str, limit: int) -> InputError:
    with open_stream() as fh:
        number = 0
        while True:
            raw = fh.readline(limit + 1)
            if not raw:
                break
            number += 1
            if len(raw) > limit and not raw.endswith(b"\n"):
                return InputError(label, f"a row longer than {limit:,} bytes (an enormous field or an "
                                  "unclosed quote)", line=number, expected=f"fields under {MAX_FIELD_BYTES:,} bytes")
    return InputError(label, f"a row longer than {limit:,} bytes", expected=f"rows under {limit:,} bytes")


def read_csv_checked(path: str | Path, columns: Sequence[str], *, chunk_rows: int = 500_000,
                     issues: list[InputIssue] | None = None, encoding: str = "utf-8",
                     max_field_bytes: int = MAX_FIELD_BYTES) -> Iterator[pd.DataFrame]:
    """Yield the CSV (or the CSV inside a zip) as string frames of about `chunk_rows` rows.

    Every value is a str ("" for an empty field). The index of each frame is the source line
    number of the row (header = line 1), which is what the validation report quotes. Columns
    beyond `columns` are kept; a missing one is an `InputError`. See the module doc for the rules.
    """
    path = Path(path)
    label, open_stream = _opener(path)
    with open_stream() as raw_stream:
        header = _split_header(raw_stream.readline(BLOCK_BYTES), label, encoding)
        _check_header(header, columns, label)
        names = [h.strip() for h in header]
        tracker = _TailTracker(raw_stream)
        bad_rows: list[tuple[int, int, str]] = []

        def on_invalid(row) -> str:
            bad_rows.append((row.number, row.actual_columns, row.text))
            return "skip"

        try:
            reader = pcsv.open_csv(
                io.BufferedReader(tracker, buffer_size=1 << 20),
                read_options=pcsv.ReadOptions(use_threads=False, block_size=BLOCK_BYTES, column_names=names,
                                              encoding="utf8" if encoding.replace("-", "").lower() == "utf8"
                                              else encoding),
                parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
                convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                    strings_can_be_null=False, quoted_strings_can_be_null=False),
            )
        except pa.ArrowInvalid as err:
            if "Empty CSV file" in str(err):
                raise InputError(label, "the file has a header but no data rows", line=2,
                                 expected="at least one data row") from None
            raise _arrow_error(err, open_stream, label, encoding, header) from None

        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        valid_rows = 0
        first_line = 2

        def raise_if_bad(final: bool) -> None:
            # Rows are numbered from the first data row; a bad row with rows after it is fatal.
            processed = valid_rows + len(bad_rows)
            for number, actual, text in bad_rows:
                if number < processed:
                    raise _ragged(label, number + 1, actual, len(names), text)
                if final and (tracker.last in (b"\n", b"\r") or actual >= len(names)):
                    raise _ragged(label, number + 1, actual, len(names), text)

        def flush() -> pd.DataFrame:
            nonlocal pending, pending_rows
            frame = _frame(pa.Table.from_batches(pending), label, first_line, max_field_bytes)
            pending, pending_rows = [], 0
            return frame

        try:
            for batch in reader:
                if pending_rows == 0:
                    first_line = valid_rows + 2
                valid_rows += batch.num_rows
                raise_if_bad(final=False)
                if batch.num_rows == 0:
                    continue
                pending.append(batch)
                pending_rows += batch.num_rows
                if pending_rows >= chunk_rows:
                    yield flush()
        except pa.ArrowInvalid as err:
            raise _arrow_error(err, open_stream, label, encoding, header) from None
        raise_if_bad(final=True)
        for number, actual, _text in bad_rows:  # only a truncated last line survives raise_if_bad
            message = (f"the last line is cut off mid-row ({actual} of {len(names)} fields and no line end); "
                       "it was dropped")
            issue = InputIssue("truncated_last_line", label, message, line=number + 1, count=1,
                               total=valid_rows + 1)
            if issues is None or issue not in issues:  # log once per source, not once per pass
                log.warning("%s line %d: %s", label, number + 1, message)
            if issues is not None and issue not in issues:
                issues.append(issue)
        if valid_rows == 0:
            raise InputError(label, "the file has a header but no data rows", line=2,
                             expected="at least one data row")
        if pending_rows:
            yield flush()


def _ragged(label: str, line: int, actual: int, expected: int, text: str) -> InputError:
    hint = ""
    if text.count('"') % 2 == 1 or "\n" in text:
        hint = " (an unclosed quote runs into the following line(s))"
    elif actual < expected:
        hint = " (the row is cut off or a field is missing)"
    return InputError(label, f"the row has {actual} fields{hint}", line=line,
                      expected=f"{expected} comma-separated fields", found=text.split("\n")[0])


def _arrow_error(err: pa.ArrowInvalid, open_stream: Callable[[], IO[bytes]], label: str, encoding: str,
                 header: list[str]) -> InputError:
    text = str(err)
    if "UTF8" in text or "UTF-8" in text or "decode" in text.lower():
        return _locate_bad_bytes(open_stream, label, encoding, header)
    if "straddling" in text or "block" in text:
        return _locate_long_line(open_stream, label, BLOCK_BYTES)
    match = re.search(r"Row #(\d+)", text)
    line = int(match.group(1)) + 1 if match else None
    return InputError(label, f"unparsable CSV ({text.splitlines()[0]})", line=line,
                      expected="comma-separated values with balanced quotes")


def _frame(table: pa.Table, label: str, first_line: int, max_field_bytes: int) -> pd.DataFrame:
    """String frame indexed by line number; rejects enormous fields, drops blank lines."""
    for name in table.column_names:
        lengths = pc.binary_length(table[name])
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > max_field_bytes:
            position = int(pc.index(lengths, longest).as_py())
            raise InputError(label, f"a field of {longest:,} bytes", line=first_line + position, field=name,
                             expected=f"at most {max_field_bytes:,} bytes per field",
                             found=table[name][position].as_py()[:40])
    frame = table.to_pandas()
    frame.index = pd.RangeIndex(first_line, first_line + len(frame))
    # pyarrow reads a blank line as a row of empty fields; it is no row at all.
    blank = np.logical_and.reduce([frame[c].to_numpy() == "" for c in frame.columns])
    return frame[~blank] if blank.any() else frame


def _first_bad(bad: np.ndarray, values: pd.Series) -> tuple[int, object]:
    position = int(np.flatnonzero(bad)[0])
    return int(values.index[position]), values.iloc[position]


def parse_datetimes(values: pd.Series, fmt: str, *, file: str, field: str, expected: str) -> pd.Series:
    """Parse with an exact format into UTC times. Empty -> NaT (a missing value); anything else
    unparsable -> InputError naming the line."""
    parsed = pd.to_datetime(values, format=fmt, errors="coerce", utc=True)
    bad = parsed.isna().to_numpy() & (values.to_numpy() != "")
    if bad.any():
        line, value = _first_bad(bad, values)
        raise InputError(file, "a date that does not parse", line=line, field=field, expected=expected, found=value)
    return parsed


def parse_numbers(values: pd.Series, *, file: str, field: str, integer: bool = False) -> pd.Series:
    """Parse numbers. Empty -> NaN (a missing value); text, or a fraction where an integer belongs,
    -> InputError naming the line."""
    stripped = values.str.strip()
    parsed = pd.to_numeric(stripped, errors="coerce")
    bad = parsed.isna().to_numpy() & (stripped.to_numpy() != "")
    expected = "an integer" if integer else "a number (digits with '.' as decimal point)"
    if not bad.any() and integer:
        bad = (parsed.notna() & (parsed != parsed.round())).to_numpy()
    if not bad.any():
        bad = ~np.isfinite(parsed.fillna(0).to_numpy(dtype="float64"))
    if bad.any():
        line, value = _first_bad(bad, values)
        raise InputError(file, "a value that is not a number" if not integer else "a value that is not an integer",
                         line=line, field=field, expected=expected, found=value)
    return parsed
