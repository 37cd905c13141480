"""`make bench-loop`: the feedback loop closed on a synthetic shop whose shoppers have known tastes.

    .venv/bin/python bench/bench_loop.py [--days 3] [--requests 600] [--events 150000]

Everything real, in a scratch home: the seeded synthetic shop (`shoprank synth`), the nightly KFP
pipeline (`kfp.local`, the same pipeline as `make demo`), the model server and the two-worker API.
- night 0: the pipeline trains on eight weeks of the shop's history and pushes a ranker;
- each simulated day: the API's clock (`shoprank.clock`) is set into the day, and shoppers split
  into two arms by a hash of their id. Each shopper first views two product pages (mostly in their
  categories; pushed into their session), then the learning arm asks `GET /recommend`; the control
  arm is shown the fixed top-10 popular list of night 0. A shopper looks down the list and clicks
  an item with probability taste(shopper, item) x the position's examination probability
  1 / log2(position + 1); a click is a view, and buys with probability `BUY_GIVEN_CLICK` x taste.
  Impressions, clicks, views, carts and purchases go through `POST /events` with the day's times;
- who calls the API: the bench plays the shop in the private zone. It holds the shop's
  pseudonymisation key and a token signing key (made in the scratch home) and issues each shopper a
  token up front: their browsing views and `GET /recommend` carry it, as their front end would send
  it. The shop's backend, an API key with `events:write` and `events:purchase` (the order system),
  posts the batched impressions, clicks, views, carts and purchases, naming shoppers by pseudonym.
  The control arm's list is the shop's own, not served by the API: its impressions carry request
  ids signed with the API's request-id secret (the scratch home's), so they are taken as before;
  no served list is logged for them;
- each night the API is stopped (its log segments close), the log is rolled, and the pipeline runs
  on the source `served` for that day: gate, features over the whole curated history (eight weeks
  plus the simulated days), training, evaluation against the production ranker, push when blessed;
- after the last day, the ablation: the last day held out (daily cut-offs, one-day labels), one
  ranker trained with the feedback (positions, shown-but-not-taken rows, served lists as
  request-time rows with their session inputs) and one without, both judged by the evaluate step
  and on the held-out day's served lists.

Taste is the synthetic shop's own generating rule: shopper u browses categories
(7u + {0, 1, 2}) mod C, and inside a category the lower-ranked items are the popular ones. The
simulation reads it from the generator, the system never sees it.

Output: bench/results/loop.json (`{"days": [{"day", "learning": {"ctr", "purchases_per_request"},
"control": {...}}], "final_gain"}`) and loop.png; the table is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import requests  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.processes import stop, wait_ready  # noqa: E402

TOKEN_TTL_S = 24 * 3600  # the longest a token may live: the loop's days outlast the default half hour

RESULTS = ROOT / "bench" / "results" / "loop.json"
PLOT = ROOT / "bench" / "results" / "loop.png"
K = 10
BUY_GIVEN_CLICK = 0.35
IN_TASTE = 0.6  # click appeal of an item in one of the shopper's categories (before its popularity)
OUT_OF_TASTE = 0.02
START = pd.Timestamp("2024-01-01", tz="UTC")
HISTORY_DAYS = 56  # eight weeks: the first training cut-off then has three weeks of history behind it
BENCH_KEY = "bench-loop-key"
BROWSE = 2  # product pages a shopper views before asking for recommendations
BROWSE_IN_TASTE = 0.8


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Taste:
    """The synthetic shop's hidden preferences (its generator's rule), for the simulated shoppers."""

    def __init__(self, source) -> None:
        catalogue = source._catalogue  # the generator's own table, with each item's category code
        self.n_categories = source.shop.n_categories
        self.category_name = dict(zip(catalogue["_cat"].astype(int), catalogue["category"], strict=False))
        self.category = dict(zip(catalogue["item_id"], catalogue["_cat"].astype(int), strict=True))
        rank = catalogue.groupby("_cat").cumcount().to_numpy()  # the generator's popularity rank
        self.appeal = dict(zip(catalogue["item_id"], 1.0 / np.sqrt(1.0 + rank / 4.0), strict=True))
        self.price = dict(zip(catalogue["item_id"], catalogue["price"].astype(float), strict=True))

        self.items = sorted(self.category)
        self.by_category: dict[int, list[str]] = {}
        for item in self.items:
            self.by_category.setdefault(self.category[item], []).append(item)

    def add(self, item: str, category: int, appeal: float, price: float) -> None:
        """An item added during a day: the same taste rule as the generator's items."""
        self.category[item], self.appeal[item], self.price[item] = category, appeal, price

    def in_category(self, category: int) -> list[str]:
        return self.by_category.get(category) or self.items

    def categories(self, user: str) -> set[int]:
        u = int(user.removeprefix("u"))
        return {(u * 7 + j) % self.n_categories for j in range(3)}

    def __call__(self, user: str, item: str) -> float:
        base = IN_TASTE if self.category.get(item, -1) in self.categories(user) else OUT_OF_TASTE
        return base * self.appeal.get(item, 0.0)


def arm_of(user: str) -> str:
    return "learning" if hashlib.sha256(user.encode()).digest()[0] % 2 == 0 else "control"


class Loop:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.args = args
        self.home = work / "home"
        self.env = {**os.environ, "SHOPRANK_HOME": str(self.home), "SHOPRANK_PSEUDONYM_KEY": BENCH_KEY,
                    "TF_CPP_MIN_LOG_LEVEL": "3"}
        for key in [k for k in self.env if k.startswith("SHOPRANK_") and k not in ("SHOPRANK_HOME",
                                                                                    "SHOPRANK_PSEUDONYM_KEY")]:
            self.env.pop(key)
        self.grpc, self.rest, self.api, self.internal = free_port(), free_port(), free_port(), free_port()
        self.env.update({"SHOPRANK_MODEL_SERVER_GRPC": f"127.0.0.1:{self.grpc}",
                         "SHOPRANK_MODEL_SERVER_URL": f"http://127.0.0.1:{self.rest}"})
        self.procs: dict[str, subprocess.Popen] = {}
        from shoprank.data.sources.synthetic import SyntheticSource

        self.sizes = {"n_events": args.events, "n_users": args.users, "n_items": args.items,
                      "n_categories": args.categories, "days": HISTORY_DAYS, "start": str(START.date())}
        self.taste = Taste(SyntheticSource(**self.sizes))
        self._identity()

    # -- who calls the API: the shop's private zone (tokens, pseudonyms) and its backend's key --------

    def _identity(self) -> None:
        from shoprank.features.pseudonymise import PseudonymKey
        from shoprank.identity.api_keys import ApiKeys
        from shoprank.identity.tokens import TokenIssuer, create_signing_key
        from shoprank.serving.api.auth import read_or_create_secret
        from shoprank.settings import load_settings

        settings = load_settings(home=str(self.home))
        private = Path(settings.resolve(settings.token_signing_key))
        create_signing_key(private, Path(settings.resolve(settings.token_public_keys)))
        self.issuer = TokenIssuer(private.read_bytes(), PseudonymKey(BENCH_KEY.encode(), "bench"), ttl_s=TOKEN_TTL_S)
        keys = ApiKeys(Path(settings.resolve(settings.api_keys_file)))
        self.backend = {"X-API-Key": keys.create("bench-loop-shop", ["events:write", "events:purchase"])}
        self.merchandiser = {"X-API-Key": keys.create("bench-loop-merchandiser", ["admin"])}
        # the API's own secret, made here before the API starts (it reads the same file): the control
        # arm's lists are the shop's, and their impressions need ids the API will take
        self.request_secret = read_or_create_secret(Path(settings.resolve(settings.request_id_key)))
        self.tokens: dict[str, dict[str, str]] = {}

    def issue_tokens(self, shoppers: list[str]) -> None:
        """Every simulated shopper's token, up front (the issuer's work, not the simulated day's)."""
        self.tokens.update({user: {"Authorization": f"Bearer {self.issuer.issue(user)}"} for user in shoppers})

    def headers(self, user: str) -> dict[str, str]:
        """The shopper's token headers."""
        return self.tokens[user]

    def control_request_id(self, subject: str) -> str:
        from shoprank.identity import request_ids

        return request_ids.issue(subject, self.request_secret)

    # -- the system under test ------------------------------------------------------------------

    def night(self, source: str, path: str, start: pd.Timestamp, end: pd.Timestamp) -> float:
        from shoprank.orchestration.params import NightlyParams

        params = NightlyParams(source=source, source_path=path, interval_start=str(start.date()),
                               interval_end=str(end.date()), n_snapshots=6, max_users_per_cutoff=2000,
                               epochs=self.args.epochs, ensemble=1, seed=0).arguments()
        started = time.perf_counter()
        script = ("import json, sys; from pipelines.runner import run_night; "
                  "print(json.dumps(run_night(json.loads(sys.argv[1])).__dict__))")
        with open(self.work / "nights.log", "ab") as log:
            done = subprocess.run([sys.executable, "-c", script, json.dumps(params)], env=self.env, cwd=ROOT,
                                  stdout=log, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            sys.exit(f"the night {start.date()} failed; see {self.work / 'nights.log'}")
        return time.perf_counter() - started

    def start(self, name: str, cmd: list[str]) -> None:
        log = open(self.work / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    def start_servers(self, day_start: pd.Timestamp | None = None) -> None:
        """The model server (once) and the API; with `day_start`, the API's clock (`shoprank.clock`)
        runs in that simulated day from 01:00, so its session window and logs live in the day."""
        if day_start is not None:
            offset = (day_start + pd.Timedelta(hours=1)).timestamp() - time.time()
            self.env["SHOPRANK_CLOCK_OFFSET_S"] = f"{offset:.3f}"
        if "models" not in self.procs:
            self.start("models", [sys.executable, "-m", "shoprank.cli", "serve-models", "--rest-port", str(self.rest),
                                  "--grpc-port", str(self.grpc), "--poll-seconds", "1"])
        self.start("api", [sys.executable, "-m", "shoprank.cli", "serve-api", "--port", str(self.api),
                           "--internal-port", str(self.internal), "--workers", "2"])
        wait_ready(f"http://127.0.0.1:{self.internal}/readyz", self.work / "api.log", timeout_s=240, poll_s=1)

    def stop(self, name: str) -> None:
        stop(self.procs.pop(name, None), timeout_s=30)

    def roll(self) -> None:
        subprocess.run([sys.executable, "-m", "shoprank.cli", "events", "roll"], env=self.env, cwd=ROOT, check=True,
                       capture_output=True)

    # -- the simulated shoppers -----------------------------------------------------------------

    def popular_list(self) -> list[str]:
        from shoprank.features.definitions import POPULAR_KEY
        from shoprank.storage import open_store, read_parquet

        frame = read_parquet(open_store(str(self.home / "store")), POPULAR_KEY).to_pandas()
        return frame.sort_values("rank")["item_id"].astype(str).tolist()[:K]

    def day(self, day: int, shoppers: list[str], control: list[str], rng: random.Random,
            new: set[str] = frozenset()) -> dict:
        """One simulated day: requests, clicks and purchases by taste and position, sent as events.
        `new`: items added this day, counted apart (which got an impression, their clicks by position)."""
        date = START + pd.Timedelta(days=HISTORY_DAYS + day)
        url = f"http://127.0.0.1:{self.api}"
        session = requests.Session()
        stats = {arm: {"requests": 0, "impressions": 0, "clicks": 0, "purchases": 0} for arm in ("learning", "control")}
        by_position = {kind: [[0, 0] for _ in range(K + 1)] for kind in ("new", "control")}  # [impressions, clicks]
        new_shown: set[str] = set()
        events: list[dict] = []
        for n in tqdm(range(self.args.requests), desc=f"day {day}", unit="req", leave=False):
            user = rng.choice(shoppers)
            arm = arm_of(user)
            # the API's clock now: the day's shoppers arrive one after another from 01:00
            at = pd.Timestamp(time.time() + float(self.env["SHOPRANK_CLOCK_OFFSET_S"]), unit="s", tz="UTC")
            self.browse(session, url, user, at, f"sim-{day}-{n}", rng)
            subject = self.issuer.subject(user)
            if arm == "learning":
                response = session.get(f"{url}/recommend", params={"k": K}, headers=self.headers(user), timeout=10)
                response.raise_for_status()
                body = response.json()
                shown, request_id = [i["item_id"] for i in body["items"]], body["request_id"]
            else:
                shown, request_id = control, self.control_request_id(subject)
            stats[arm]["requests"] += 1
            sid = f"sim-{day}-{n}"
            for position, item in enumerate(shown, start=1):
                t = at + pd.Timedelta(milliseconds=position)
                base = {"user_id": subject, "item_id": item, "session_id": sid}
                events.append({"event_id": uuid.uuid4().hex, "event_type": "impression", "request_id": request_id,
                               "position": position, "event_time": t.isoformat(), **base})
                stats[arm]["impressions"] += 1
                kind = "new" if item in new else "control" if arm == "control" else None
                if kind == "new":
                    new_shown.add(item)
                if kind is not None:
                    by_position[kind][position][0] += 1
                if rng.random() >= self.taste(user, item) / math.log2(position + 1):
                    continue
                stats[arm]["clicks"] += 1
                if kind is not None:
                    by_position[kind][position][1] += 1
                price = round(self.taste.price[item], 2)
                click = t + pd.Timedelta(seconds=5 + position)
                events.append({"event_id": uuid.uuid4().hex, "event_type": "click", "request_id": request_id,
                               "position": position, "event_time": click.isoformat(), **base})
                events.append({"event_id": uuid.uuid4().hex, "event_type": "view", "price": price,
                               "event_time": (click + pd.Timedelta(seconds=1)).isoformat(), **base})
                if rng.random() < BUY_GIVEN_CLICK * self.taste(user, item) / IN_TASTE:
                    stats[arm]["purchases"] += 1
                    for kind, after in (("cart", 20), ("purchase", 40)):
                        events.append({"event_id": uuid.uuid4().hex, "event_type": kind, "price": price, "quantity": 1,
                                       "event_time": (click + pd.Timedelta(seconds=after)).isoformat(), **base})
            if len(events) >= 900 or n == self.args.requests - 1:
                posted = session.post(f"{url}/events", json=events, headers=self.backend, timeout=30)
                if posted.status_code != 200 or posted.json()["rejected"]:
                    sys.exit(f"POST /events refused the simulation's events: {posted.status_code} {posted.text[:500]}")
                events = []
        out = {"day": day, "date": str(date.date())}
        if new:
            positions = [p for p in range(1, K + 1) if by_position["new"][p][0]]
            shown = sum(by_position["new"][p][0] for p in positions)
            clicks = sum(by_position["new"][p][1] for p in positions)
            # the popular baseline where the new items were shown: the control list's CTR at those positions,
            # weighted like the new items' impressions (position bias is the larger effect at the list's end)
            base = sum(by_position["new"][p][0] * by_position["control"][p][1] / max(by_position["control"][p][0], 1)
                       for p in positions)
            out["new_items"] = {"added": len(new), "with_an_impression": len(new_shown),
                                "share_with_an_impression": round(len(new_shown) / len(new), 4),
                                "impressions": shown, "clicks": clicks, "ctr": round(clicks / max(shown, 1), 5),
                                "popular_ctr_at_same_positions": round(base / max(shown, 1), 5),
                                "positions": positions}
        for arm, s in stats.items():
            out[arm] = {"requests": s["requests"], "ctr": round(s["clicks"] / max(s["impressions"], 1), 5),
                        "purchases_per_request": round(s["purchases"] / max(s["requests"], 1), 5),
                        "clicks": s["clicks"], "purchases": s["purchases"]}
        return out

    def browse(self, http: requests.Session, url: str, user: str, at: pd.Timestamp, sid: str,
               rng: random.Random) -> None:
        """Before asking for recommendations the shopper looks at `BROWSE` product pages, each in one of
        their categories with probability `BROWSE_IN_TASTE`: views sent and pushed (`sync`) before the
        request, so the request sees them in its session, as a shopper's product page would (with the
        shopper's token, which names them: no user_id)."""
        views = []
        for j in range(BROWSE):
            pool = self.taste.in_category(rng.choice(sorted(self.taste.categories(user)))) \
                if rng.random() < BROWSE_IN_TASTE else self.taste.items
            item = rng.choice(pool)
            views.append({"event_id": uuid.uuid4().hex, "event_type": "view", "item_id": item,
                          "session_id": sid, "price": round(self.taste.price[item], 2),
                          "event_time": (at - pd.Timedelta(seconds=60 * (BROWSE - j))).isoformat()})
        posted = http.post(f"{url}/events", params={"sync": "true"}, json=views, headers=self.headers(user),
                           timeout=30)
        if posted.status_code != 200 or posted.json()["rejected"]:
            sys.exit(f"POST /events refused the browsing views: {posted.status_code} {posted.text[:500]}")

    def add_new_items(self, day: int, n: int, rng: random.Random) -> set[str]:
        """A merchandiser adds `n` items at the start of the day (`PUT /catalogue/items`) across the shop's
        categories, with titles and brands like the generator's, and turns on two new-item slots. The
        system knows nothing of them but their catalogue entry; the simulation gives them the taste
        rule's appeal of a median item of their category."""
        url = f"http://127.0.0.1:{self.api}"
        rules = requests.put(f"{url}/merchandising/rules", data=b'version = "loop-new-items"\nnew_item_slots = 2\n',
                             headers=self.merchandiser, timeout=30)
        rules.raise_for_status()
        rows = []
        for n_item in range(n):
            category = rng.randrange(self.taste.n_categories)
            item = f"new-{day}-{n_item}"
            median = self.taste.in_category(category)[len(self.taste.in_category(category)) // 2]
            price = round(self.taste.price[median], 2)
            self.taste.add(item, category, self.taste.appeal[median], price)
            rows.append({"item_id": item, "category": self.taste.category_name[category], "brand": "NewCo",
                         "price": price, "title": f"NewCo {self.taste.category_name[category].split('.')[-1]} new"})
        added = requests.put(f"{url}/catalogue/items", json=rows, headers=self.merchandiser, timeout=120)
        if added.status_code != 200:
            sys.exit(f"PUT /catalogue/items refused the new items: {added.status_code} {added.text[:500]}")
        time.sleep(3)  # both workers poll the feeds every 2 s
        return {r["item_id"] for r in rows}

    def ablation(self, end: pd.Timestamp) -> dict:
        """Whether the feedback (impressions, positions, served lists with their sessions) improves the
        evaluate step: the last simulated day held out (daily cut-offs, one-day labels), two rankers
        trained on the same data with and without it, judged by the evaluate step. Run in a child
        process, in the loop's home, after the last day's log is rolled."""
        # this file as the child's main module, not `python -c`: pyspark's Spark Connect check takes a
        # main module without a file for a doctest run and exits 0 (silently) when grpcio-status is missing
        start = end - pd.Timedelta(days=1)
        with open(self.work / "ablation.log", "ab") as log:
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--ablation-arms",
                                   str(self.work / "ablation"), str(start.date()), str(end.date())], env=self.env,
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("ABLATION ")]
        if done.returncode != 0 or not lines:
            sys.exit(f"the ablation failed; see {self.work / 'ablation.log'}")
        return json.loads(lines[-1].removeprefix("ABLATION "))

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)


ABLATION_SNAPSHOTS = 8  # daily: the held-out day, the validation day and five training days


def ablation_arms(work: str, start: str, end: str) -> dict:
    """The ablation's two arms (see `Loop.ablation`), in this process, with the loop's settings."""
    from shoprank.evaluation.ranking import score_examples, served_list_metrics
    from shoprank.features.snapshots import snapshot_times
    from shoprank.features.training_set import TrainingSetConfig
    from shoprank.models.train import TrainConfig
    from shoprank.orchestration import private, steps

    folder = Path(work)
    at_end = pd.Timestamp(end, tz="UTC")
    handed = private.hand_over("served", "", start, end, snapshot_times(at_end, ABLATION_SNAPSHOTS, step_days=1))
    artifacts = steps.features_from_crossing(handed["crossing"], folder)
    interactions, snapshots = artifacts["interactions"], artifacts["snapshots"]
    config = TrainingSetConfig(label_days=1, max_users_per_cutoff=2000)
    out: dict = {"held_out_day": start, "label_days": 1, "snapshots": ABLATION_SNAPSHOTS}
    for arm, feedback in (("with_feedback", True), ("without_feedback", False)):
        dataset = folder / arm / "dataset"
        rows = steps.training_set(artifacts["crossing"], dataset, config, feedback=feedback,
                                  interactions_path=interactions, snapshots_dir=snapshots,
                                  impressions_path=artifacts["impressions"])
        trained = steps.train(dataset, folder / arm / "model", folder / arm / "report", TrainConfig(epochs=6, seed=0))
        judged = steps.evaluate(folder / arm / "model", dataset, interactions_path=interactions)
        out[arm] = {"training_set": rows, "val_auc": trained["val_auc"], "test": judged.candidate,
                    "served_lists": (judged.extra.get("served_lists") or {}).get("candidate"),
                    "off_policy": judged.extra.get("off_policy")}
    # both arms' models scored on the same served lists (the with-feedback set has them)
    dataset = folder / "with_feedback" / "dataset"
    served = pd.read_parquet(dataset / "examples.parquet")
    served = served[served["split"] == "served_test"].reset_index(drop=True)
    if len(served):
        out["without_feedback"]["served_lists"] = served_list_metrics(
            served, score_examples(str(folder / "without_feedback" / "model"), served))
    return out


def active_shoppers(home: Path, n: int, seed: int) -> list[str]:
    from shoprank.data.curated import read_events
    from shoprank.storage import open_store

    events = read_events(open_store(str(home / "store")), columns=["user_id", "event_time"])
    recent = events[events["event_time"] >= events["event_time"].max() - pd.Timedelta(days=14)]
    users = sorted(recent["user_id"].unique())
    return random.Random(seed).sample(users, min(n, len(users)))


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [d["day"] for d in results["days"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, title in ((axes[0], "purchases_per_request", "purchases per request"), (axes[1], "ctr", "CTR")):
        for arm, style in (("learning", "o-"), ("control", "s--")):
            ax.plot(days, [d[arm][metric] for d in results["days"]], style, label=arm)
        ax.set_xlabel("simulated day (retrained every night)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"closed loop on the synthetic shop: final gain {results['final_gain']:+.1%} purchases/request")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


def markdown(results: dict) -> str:
    lines = ["| day | learning CTR | control CTR | learning purchases/request | control purchases/request | gain |",
             "|---:|---:|---:|---:|---:|---:|"]
    for d in results["days"]:
        learn, ctl = d["learning"], d["control"]
        gain = learn["purchases_per_request"] / max(ctl["purchases_per_request"], 1e-9) - 1
        lines.append(f"| {d['day']} | {learn['ctr']:.4f} | {ctl['ctr']:.4f} | {learn['purchases_per_request']:.4f} "
                     f"| {ctl['purchases_per_request']:.4f} | {gain:+.1%} |")
    new = (results.get("new_items_day") or {}).get("new_items")
    if new:
        lines += ["", f"Items added on day {results['new_items_day']['day']} (no interactions, two new-item slots): "
                      f"{new['with_an_impression']} of {new['added']} ({new['share_with_an_impression']:.0%}) shown "
                      f"the same day; their CTR {new['ctr']:.4f} against {new['popular_ctr_at_same_positions']:.4f} "
                      f"for the popular list at the same positions ({new['impressions']} impressions)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=3, help="simulated days (each followed by a night)")
    parser.add_argument("--requests", type=int, default=2000, help="recommendation requests per day, both arms")
    parser.add_argument("--events", type=int, default=200_000, help="events in the eight weeks of history")
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=1500)
    parser.add_argument("--categories", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ablation", action="store_true", help="skip the with/without-feedback ablation")
    parser.add_argument("--ablation-arms", nargs=3, metavar=("WORK", "START", "END"),
                        help="(internal) run the ablation's two arms in this process and print them")
    parser.add_argument("--new-items", type=int, default=40, help="items added at the start of the extra day "
                                                                  "after the last (0: no such day)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch home (printed) for inspection")
    args = parser.parse_args()
    if args.ablation_arms:
        print("ABLATION " + json.dumps(ablation_arms(*args.ablation_arms)), flush=True)
        return
    work = Path(tempfile.mkdtemp(prefix="shoprank-bench-loop-"))
    loop = Loop(work, args)
    started = time.perf_counter()
    results: dict = {"method": "open shop simulation: taste x 1/log2(position+1) clicks, purchases given click; "
                               "learning arm = GET /recommend (retrained nightly on the served events), "
                               "control = night 0's fixed top-10 popular list", "shop": loop.sizes, "k": K,
                     "requests_per_day": args.requests, "days": [], "nights_s": []}
    try:
        from shoprank.data.sources.synthetic import write_synthetic

        shop = write_synthetic(work / "shop", progress=False, **{k: v for k, v in loop.sizes.items()})
        end = START + pd.Timedelta(days=HISTORY_DAYS)
        print(f"night 0 on {args.events:,} events of history ...", flush=True)
        results["nights_s"].append(round(loop.night("canonical", str(shop), START, end), 1))
        if not any((loop.home / "store" / "models" / "ranker").glob("*/saved_model.pb")):
            sys.exit(f"night 0 blessed no ranker, so there is nothing to serve: see {work / 'nights.log'}")
        control = loop.popular_list()
        shoppers = active_shoppers(loop.home, 2000, args.seed)
        loop.issue_tokens(shoppers)
        rng = random.Random(args.seed)
        for day in range(args.days + 1):
            loop.start_servers(START + pd.Timedelta(days=HISTORY_DAYS + day))
            results["days"].append(loop.day(day, shoppers, control, rng))
            print(json.dumps(results["days"][-1]), flush=True)
            loop.stop("api")  # closes its log segments
            loop.roll()
            if day == args.days:
                break
            date = START + pd.Timedelta(days=HISTORY_DAYS + day)
            results["nights_s"].append(round(loop.night("served", "", date, date + pd.Timedelta(days=1)), 1))
        if not args.no_ablation:
            print("ablation: the last day held out, rankers with and without the feedback ...", flush=True)
            results["ablation"] = loop.ablation(START + pd.Timedelta(days=HISTORY_DAYS + args.days + 1))
            print(json.dumps(results["ablation"]), flush=True)
        if args.new_items:
            # a day after the rest (no night follows, so the nightly gate never sees unknown items): items
            # added in the morning, served by content the same day
            day = args.days + 1
            loop.start_servers(START + pd.Timedelta(days=HISTORY_DAYS + day))
            new = loop.add_new_items(day, args.new_items, rng)
            results["new_items_day"] = loop.day(day, shoppers, control, rng, new)
            print(json.dumps(results["new_items_day"]), flush=True)
            loop.stop("api")
    finally:
        loop.close()
        if args.keep:
            print(f"scratch home kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    last = results["days"][-1]
    results["final_gain"] = round(last["learning"]["purchases_per_request"]
                                  / max(last["control"]["purchases_per_request"], 1e-9) - 1, 4)
    results["goal"] = "learning arm >= +20% purchases per request over the control on the last day"
    results["goal_met"] = results["final_gain"] >= 0.2
    results["wall_s"] = round(time.perf_counter() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    plot(results)
    print(markdown(results))
    print(f"final gain {results['final_gain']:+.1%} (goal +20%: {'met' if results['goal_met'] else 'NOT met'}); "
          f"wrote {RESULTS} and {PLOT} in {results['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
