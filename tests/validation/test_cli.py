"""`shoprank validate PATH`: exit 0 pass, 1 failed gate, 2 unreadable input (one line, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REES46_CSV
from tests.data.test_sources_errors import REES_HEADER, REES_ROWS
from tests.validation.conftest import FIXTURES


def validate(capsys, *argv: str) -> tuple[int, str, str]:
    from shoprank.cli import main

    code = main(["validate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_passing_canonical_batch_exits_0(make_batch, tmp_path, capsys):
    code, out, err = validate(capsys, str(make_batch()), "--reports-dir", str(tmp_path / "r"),
                              "--start", "2024-01-01", "--end", "2024-01-08")
    assert code == 0 and out.startswith("validation gate PASSED") and err == ""


def test_failed_gate_exits_1_with_the_summary(make_batch, tmp_path, capsys):
    def edit(events, items, users):
        events.loc[events.index[:9], "user_id"] = None
        return events, items, users

    code, out, _ = validate(capsys, str(make_batch(edit)), "--source", "canonical", "--reports-dir",
                            str(tmp_path / "r"))
    assert code == 1
    assert out.startswith("validation gate FAILED: 1 failing check")
    assert "observed: 9 of 6,000 rows (0.15%) have no user_id" in out
    assert "events/date=2024-01-01/part-0.parquet row 0: user_id=null" in out


def test_rees46_sample_exits_0_with_its_warnings(tmp_path, capsys):
    code, out, _ = validate(capsys, str(REES46_CSV), "--reports-dir", str(tmp_path / "r"))
    assert code == 0
    assert out.startswith("validation gate PASSED: 3 warnings")
    assert f"{REES46_CSV} line 17436: the last line is cut off mid-row" in out


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.csv", "", "line 1: the file is empty"),
    ("header.csv", REES_HEADER + "\n", "line 2: the file has a header but no data rows"),
    ("semicolons.csv", REES_HEADER.replace(",", ";") + "\n", "line 1: the header is separated by ';'"),
    ("cut.csv", "\n".join([REES_HEADER, REES_ROWS[0][:50], REES_ROWS[1]]) + "\n", "line 2: the row has 4 fields"),
    ("date.csv", "\n".join([REES_HEADER, REES_ROWS[0].replace(" UTC", "")]) + "\n",
     "line 2, field 'event_time': a date that does not parse"),
])
def test_unreadable_input_exits_2_with_one_line(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    code, out, err = validate(capsys, str(path), "--source", "rees46", "--reports-dir", str(tmp_path / "r"))
    assert code == 2 and out == ""
    assert err.startswith(f"error: unreadable input: {path} {message}") and err.count("\n") == 1


def test_missing_path_bad_config_and_unknown_format(tmp_path, capsys, make_batch):
    code, _, err = validate(capsys, str(tmp_path / "nothing.csv"))
    assert code == 2 and err == f"error: unreadable input: {tmp_path / 'nothing.csv'}: no such file or folder\n"
    bad = tmp_path / "bad.toml"
    bad.write_text('[checks."events.nope"]\nseverity = "warn"\n')
    code, _, err = validate(capsys, str(make_batch()), "--config", str(bad))
    assert code == 2 and "unknown check 'events.nope'" in err
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    code, _, err = validate(capsys, str(other))
    assert code == 2 and "cannot tell the source format from the header" in err


def test_config_override_on_the_command_line(make_batch, tmp_path, capsys):
    batch = make_batch()
    day = batch / "events" / "date=2024-01-03"
    (day / "part-1.parquet").write_bytes((day / "part-0.parquet").read_bytes())
    assert validate(capsys, str(batch), "--reports-dir", str(tmp_path / "r"))[0] == 1
    assert validate(capsys, str(batch), "--reports-dir", str(tmp_path / "r"), "--config",
                    str(FIXTURES / "lenient.toml"))[0] == 0


def test_exit_code_and_no_traceback_in_a_real_process(tmp_path: Path):
    broken = tmp_path / "broken.csv"
    broken.write_bytes(REES_HEADER.encode() + b"\n" + REES_ROWS[0].encode().replace(b"shiseido", b"\xff\xfe") + b"\n")
    proc = subprocess.run([sys.executable, "-m", "shoprank.validation.cli", "validate", str(broken),
                           "--reports-dir", str(tmp_path / "r")], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: unreadable input: {broken} line 2, field 'brand': bytes that are not utf-8")
