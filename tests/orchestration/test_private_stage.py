"""The private stage's tasks, one by one, as the DAG and its retries run them: a retry after a task
died halfway does the right thing, a refused or skipped batch leaves nothing behind, and an hour is
the gate's reference only once it is published."""

import pandas as pd
import pytest

from shoprank.layout import GATE_STATE_HOURLY_PREFIX, staging_prefix
from shoprank.locks import LockHeld, nightly_lock
from shoprank.orchestration import private
from shoprank.settings import load_settings
from shoprank.storage import open_for

START, END = "2024-01-01", "2024-01-15"


@pytest.fixture
def shop(tmp_path):
    from shoprank.data.sources.synthetic import write_synthetic

    write_synthetic(tmp_path / "shop", start=START, days=14, n_events=20_000, n_users=800, n_items=600)
    return tmp_path / "shop"


def test_a_night_stages_gates_publishes_and_a_retried_publish_returns_what_it_did(home, shop):
    settings = load_settings()
    store = open_for(settings)
    staged = private.stage("canonical", str(shop), START, END, settings, progress=False)
    assert staged["events"] > 0 and store.list(f"{staging_prefix(START, END)}/")
    assert private.validate(START, END, settings)["passed"]
    done = private.publish(START, END, settings)
    assert done["days_published"] >= 13 and not store.list(f"{staging_prefix(START, END)}/")
    assert private.publish(START, END, settings) == done  # the retry of a publish that died after its work


def test_a_publish_with_nothing_staged_says_to_stage_again(home):
    with pytest.raises(FileNotFoundError, match="nothing staged for 2024-01-01..2024-01-15; run the ingest"):
        private.publish(START, END, load_settings())


def test_a_refused_batch_leaves_no_staging_copy(home, shop):
    from shoprank.validation import GateFailed

    day = next((shop / "events").iterdir())
    part = next(day.glob("*.parquet"))
    frame = pd.read_parquet(part)
    frame.loc[frame.index[:200], "price"] = -5.0
    frame.to_parquet(part, index=False)
    settings = load_settings()
    private.stage("canonical", str(shop), START, END, settings, progress=False)
    with pytest.raises(GateFailed):
        private.validate(START, END, settings)
    assert not open_for(settings).list(f"{staging_prefix(START, END)}/")


def test_an_hour_skipped_for_a_running_night_is_neither_kept_nor_the_reference(home, shop):
    settings = load_settings()
    start, end = "2024-01-03T10:00:00+00:00", "2024-01-03T11:00:00+00:00"
    with nightly_lock(open_for(settings), "a night in progress"), pytest.raises(LockHeld):
        private.validate_and_publish_hour("canonical", str(shop), start, end, settings)
    store = open_for(settings)
    assert not store.list(f"{staging_prefix(start, end)}/") and not store.list(f"{GATE_STATE_HOURLY_PREFIX}/")
    done = private.validate_and_publish_hour("canonical", str(shop), start, end, settings)
    assert done["events"] > 0 and store.list(f"{GATE_STATE_HOURLY_PREFIX}/")
