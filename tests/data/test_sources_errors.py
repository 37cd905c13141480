"""Unreadable input is a clear error naming file, line or field, and what was expected."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoprank.data.errors import MAX_FIELD_BYTES, InputError
from shoprank.data.sources import open_source

REES_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
REES_ROWS = [
    "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde-8bb3",
    "2019-10-01 00:00:01 UTC,cart,3900821,2053013552326770905,appliances.water_heater,aqua,33.20,554748717,9333dfbd",
    "2019-10-01 00:00:02 UTC,view,17200506,2053013559792632471,furniture.sofa,,543.10,519107250,566511c2",
    "2019-10-01 00:00:03 UTC,purchase,1307067,2053013558920217191,computers.notebook,lenovo,251.74,550050854,7c90fc70",
]
TAFENG_HEADER = "TRANSACTION_DT,CUSTOMER_ID,AGE_GROUP,PIN_CODE,PRODUCT_SUBCLASS,PRODUCT_ID,AMOUNT,ASSET,SALES_PRICE"
TAFENG_ROWS = [
    '"11/1/2000","01104905","45-49","115","110411","4710199010372","2","24","30"',
    '"11/1/2000","00418683","45-49","115","120107","4710857472535","1","48","46"',
    '"11/2/2000","01057331","35-39","115","100407","4710043654103","2","142","166"',
]


def write(tmp_path: Path, text: str | bytes, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def rees(tmp_path: Path, lines: list[str], end: str = "\n") -> Path:
    return write(tmp_path, "\n".join([REES_HEADER, *lines]) + end)


def read_all(source: str, path: Path) -> tuple[pd.DataFrame, object]:
    adapter = open_source(source, path)
    return pd.concat(adapter.events(chunk_rows=2)), adapter


def error(source: str, path: Path) -> str:
    with pytest.raises(InputError) as err:
        read_all(source, path)
    return str(err.value)


def test_clean_file_rows_keep_their_line_numbers(tmp_path):
    events, adapter = read_all("rees46", rees(tmp_path, REES_ROWS))
    assert list(events.index) == [2, 3, 4, 5]
    assert adapter.issues == []
    assert events["event_time"].iloc[0] == pd.Timestamp("2019-10-01", tz="UTC")


def test_empty_file(tmp_path):
    path = write(tmp_path, "")
    assert error("rees46", path) == f"{path} line 1: the file is empty; expected a header line naming the columns"


def test_header_only(tmp_path):
    path = write(tmp_path, REES_HEADER + "\n")
    assert error("rees46", path) == (
        f"{path} line 2: the file has a header but no data rows; expected at least one data row")


def test_missing_column(tmp_path):
    path = write(tmp_path, REES_HEADER.replace(",price", "") + "\n" + REES_ROWS[0].replace(",35.79", "") + "\n")
    assert error("rees46", path).startswith(
        f"{path} line 1, field 'price': missing column(s) price; expected columns {REES_HEADER}, "
        f"found 'event_time,event_type,product_id,category_id,")


def test_wrong_delimiter(tmp_path):
    path = write(tmp_path, REES_HEADER.replace(",", ";") + "\n" + REES_ROWS[0].replace(",", ";") + "\n")
    message = error("rees46", path)
    assert message.startswith(f"{path} line 1: the header is separated by ';', not by commas; "
                              f"expected a comma-separated header {REES_HEADER}")


def test_non_utf8_bytes(tmp_path):
    rows = [r.encode() for r in REES_ROWS]
    rows[2] = rows[2].replace(b"furniture.sofa", b"m\xf6bel.sofa")  # latin-1, not UTF-8
    path = write(tmp_path, b"\n".join([REES_HEADER.encode(), *rows]) + b"\n")
    message = error("rees46", path)
    assert message.startswith(f"{path} line 4, field 'category_code': bytes that are not utf-8 at byte ")
    assert "expected utf-8 text, found b'" in message


def test_row_cut_off_in_the_middle_of_the_file(tmp_path):
    path = rees(tmp_path, [REES_ROWS[0], REES_ROWS[1][:40], *REES_ROWS[2:]])
    assert error("rees46", path) == (
        f"{path} line 3: the row has 4 fields (the row is cut off or a field is missing); "
        "expected 9 comma-separated fields, found '2019-10-01 00:00:01 UTC,cart,3900821,205'")


def test_too_many_fields(tmp_path):
    path = rees(tmp_path, [REES_ROWS[0] + ",extra", *REES_ROWS[1:]])
    assert error("rees46", path).startswith(f"{path} line 2: the row has 10 fields; expected 9 comma-separated fields")


def test_unclosed_quote(tmp_path):
    path = rees(tmp_path, [REES_ROWS[0], REES_ROWS[1].replace(",aqua,", ',"aqua,'), *REES_ROWS[2:]])
    assert error("rees46", path).startswith(
        f"{path} line 3: the row has 6 fields (an unclosed quote runs into the following line(s)); "
        "expected 9 comma-separated fields")


def test_truncated_last_line_is_dropped_and_reported(tmp_path):
    path = rees(tmp_path, [*REES_ROWS[:3], REES_ROWS[3][:60]], end="")  # no line end: cut while writing
    events, adapter = read_all("rees46", path)
    assert list(events.index) == [2, 3, 4]
    (issue,) = adapter.issues
    assert (issue.check, issue.line, issue.file) == ("truncated_last_line", 5, str(path))
    assert issue.message == "the last line is cut off mid-row (4 of 9 fields and no line end); it was dropped"


def test_short_last_line_with_a_line_end_is_an_error(tmp_path):
    path = rees(tmp_path, [*REES_ROWS[:3], REES_ROWS[3][:60]])
    assert error("rees46", path).startswith(f"{path} line 5: the row has 4 fields (the row is cut off")


def test_unparsable_date(tmp_path):
    path = rees(tmp_path, [REES_ROWS[0], REES_ROWS[1].replace("2019-10-01 00:00:01 UTC", "01/10/2019 00:00"),
                           *REES_ROWS[2:]])
    assert error("rees46", path) == (
        f"{path} line 3, field 'event_time': a date that does not parse; "
        "expected a time as YYYY-MM-DD HH:MM:SS UTC, found '01/10/2019 00:00'")


def test_number_as_text(tmp_path):
    path = rees(tmp_path, [*REES_ROWS[:2], REES_ROWS[2].replace("543.10", "five hundred"), REES_ROWS[3]])
    assert error("rees46", path) == (
        f"{path} line 4, field 'price': a value that is not a number; "
        "expected a number (digits with '.' as decimal point), found 'five hundred'")


def test_empty_fields_are_missing_values_not_errors(tmp_path):
    """Empty is null (the gate judges it); only unparsable text makes the file unreadable."""
    path = rees(tmp_path, [REES_ROWS[0].replace(",541312140,", ",,").replace(",35.79,", ",,"), *REES_ROWS[1:]])
    events, _ = read_all("rees46", path)
    assert events.loc[2, "user_id"] is None and pd.isna(events.loc[2, "price"])


def test_enormous_field(tmp_path):
    huge = "x" * (MAX_FIELD_BYTES + 10)
    path = rees(tmp_path, [REES_ROWS[0], REES_ROWS[1].replace(",aqua,", f",{huge},"), *REES_ROWS[2:]])
    assert error("rees46", path) == (
        f"{path} line 3, field 'brand': a field of {MAX_FIELD_BYTES + 10:,} bytes; "
        f"expected at most {MAX_FIELD_BYTES:,} bytes per field, found '{'x' * 40}'")


def test_a_row_larger_than_a_parse_block(tmp_path):
    from shoprank.data.errors import BLOCK_BYTES

    huge = "y" * (2 * BLOCK_BYTES + 100)
    path = rees(tmp_path, [REES_ROWS[0], REES_ROWS[1].replace(",aqua,", f",{huge},"), *REES_ROWS[2:]])
    assert error("rees46", path) == (
        f"{path} line 3: a row longer than {BLOCK_BYTES:,} bytes (an enormous field or an unclosed quote); "
        f"expected fields under {MAX_FIELD_BYTES:,} bytes")


def test_tafeng_csv_and_zip(tmp_path):
    csv_path = write(tmp_path, "\ufeff" + "\n".join([TAFENG_HEADER, *TAFENG_ROWS]) + "\n", "ta_feng.csv")
    events, _ = read_all("tafeng", csv_path)
    assert list(events.index) == [2, 3, 4] and events["quantity"].tolist() == [2, 1, 2]
    assert events["price"].tolist() == [15.0, 46.0, 83.0]
    zipped = tmp_path / "ta_feng.csv.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(csv_path, "ta_feng_all_months_merged.csv")
    pd.testing.assert_frame_equal(read_all("tafeng", zipped)[0], events)


def test_tafeng_errors_name_the_zip_member(tmp_path):
    zipped = tmp_path / "ta_feng.csv.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("ta_feng.csv", "\n".join([TAFENG_HEADER, TAFENG_ROWS[0], TAFENG_ROWS[1].replace('"1"', '"1.5"')]))
    assert error("tafeng", zipped) == (
        f"{zipped}!ta_feng.csv line 3, field 'AMOUNT': a value that is not an integer; expected an integer, "
        "found '1.5'")
    bad_date = write(tmp_path, "\n".join([TAFENG_HEADER, TAFENG_ROWS[0].replace("11/1/2000", "2000-11-01")]))
    assert error("tafeng", bad_date) == (
        f"{bad_date} line 2, field 'TRANSACTION_DT': a date that does not parse; "
        "expected a date as m/d/yyyy, e.g. 11/1/2000, found '2000-11-01'")


def test_not_a_zip(tmp_path):
    path = write(tmp_path, "garbage", "ta_feng.csv.zip")
    assert error("tafeng", path).startswith(f"{path}: not a readable zip archive")


def test_missing_file(tmp_path):
    assert error("rees46", tmp_path / "nope.csv") == f"{tmp_path / 'nope.csv'}: no such file"


# ---- canonical parquet --------------------------------------------------------------------------

def test_canonical_missing_folder_and_truncated_parquet(tmp_path):
    from shoprank.data.sources.synthetic import write_synthetic

    with pytest.raises(InputError, match="no such folder; expected a canonical folder"):
        open_source("canonical", tmp_path / "missing")
    batch = write_synthetic(tmp_path / "batch", n_events=2_000, days=2, progress=False)
    victim = sorted((batch / "events").rglob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # cut off in transfer
    with pytest.raises(InputError) as err:
        list(open_source("canonical", batch).events())
    assert str(err.value).startswith(f"{victim}: not a readable parquet file (")
    assert str(err.value).endswith("expected a complete parquet file")


def test_canonical_wrong_type(tmp_path):
    from shoprank.data.sources.synthetic import write_synthetic

    batch = write_synthetic(tmp_path / "batch", n_events=2_000, days=2, progress=False)
    users = batch / "users" / "part-0.parquet"
    table = pq.read_table(users)
    pq.write_table(table.set_column(0, "user_id", pa.array(range(table.num_rows))), users)
    with pytest.raises(InputError) as err:
        open_source("canonical", batch).users()
    assert str(err.value) == f"{users}, field 'user_id': wrong column type; expected string, found 'int64'"
