"""Severities and thresholds come from gate.toml; overrides are merged and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoprank.data.errors import InputError
from shoprank.validation.config import DEFAULT_CONFIG, load_config
from tests.validation.conftest import FIXTURES, finding, severities


def test_every_check_in_code_is_configured_and_vice_versa():
    from shoprank.validation.suites import all_check_ids

    assert set(load_config().checks) == all_check_ids()


def test_defaults_come_from_the_packaged_file():
    config = load_config()
    assert config.sources == (str(DEFAULT_CONFIG),)
    assert config.check("events.price.positive").severity == "fail"
    assert config.check("events.price.positive").mostly == 0.995
    assert config.check("events.volume")["min_ratio"] == 0.1
    assert config.check("events.volume")["max_ratio"] == 10.0
    assert config.check("events.drift.category_mix")["max_psi"] == 0.25


def test_override_changes_only_what_it_names():
    config = load_config(FIXTURES / "lenient.toml")
    assert config.check("events.price.positive").severity == "warn"
    assert config.check("events.price.positive").mostly == 0.995  # not in the override: default kept
    assert config.check("events.duplicates").severity == "off"
    assert config.run["sample_rows"] == 2
    assert config.sources[-1].endswith("lenient.toml")


@pytest.mark.parametrize(("text", "message"), [
    ('[checks."events.price.postive"]\nseverity = "warn"\n', "unknown check 'events.price.postive'"),
    ('[checks."events.price.positive"]\nseverity = "loud"\n', "invalid severity; expected fail | warn | off"),
    ('[checks."events.price.positive"]\nmostly = 1.5\n', "invalid mostly; expected a number in [0, 1]"),
    ('[checks."events.price.positive"]\nlimit = 3\n', "unknown setting 'limit'"),
    ('[checks."events.volume"]\nmax_ratio = "ten"\n', "invalid max_ratio; expected a number >= 0"),
    ("[run]\nchunk_rows = -5\n", "invalid chunk_rows; expected an integer >= 0"),
    ("[gate]\nx = 1\n", "unknown section [gate]"),
    ("[checks\nbroken", "not valid TOML"),
])
def test_bad_override_is_refused_with_file_and_key(tmp_path: Path, text: str, message: str):
    path = tmp_path / "site.toml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_config(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_severity_from_config_turns_a_failure_into_a_warning(make_batch, gate):
    def edit(events, items, users):
        rows = events.index[events["price"].notna()][::40]
        events.loc[rows, "price"] = 0.0
        return events, items, users

    batch = make_batch(edit)
    assert severities(gate(batch)) == {"events.price.positive": "fail"}
    lenient = gate(batch, config_path=FIXTURES / "lenient.toml")
    assert lenient.passed and severities(lenient) == {"events.price.positive": "warn"}
    assert len(finding(lenient, "events.price.positive").samples) == 2  # run.sample_rows = 2
    assert "config: " in lenient.summary and "lenient.toml" in lenient.summary


def test_mostly_from_config(make_batch, gate, tmp_path):
    def edit(events, items, users):
        events.loc[events.index[events["price"].notna()][:12], "price"] = 0.0  # 0.2%
        return events, items, users

    batch = make_batch(edit)
    assert gate(batch).passed
    strict = tmp_path / "strict.toml"
    strict.write_text('[checks."events.price.positive"]\nmostly = 1.0\n')
    f = finding(gate(batch, config_path=strict), "events.price.positive")
    assert f.severity == "fail" and f.expected == "price > 0 (or no price) for every row"


def test_off_skips_the_check(make_batch, gate):
    batch = make_batch()
    day = batch / "events" / "date=2024-01-03"
    (day / "part-1.parquet").write_bytes((day / "part-0.parquet").read_bytes())
    result = gate(batch, config_path=FIXTURES / "lenient.toml")
    assert result.passed and not [f for f in result.findings if f.check == "events.duplicates"]
