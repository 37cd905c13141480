"""`make bench-train-scale`: training at the 10M-event shop, streamed, on the largest sample that fits.

    .venv/bin/python -m bench.bench_train_scale [--events 10000000] [--users 2000 8000 20000 30000] [--epochs 1]
        [--reuse]   # the shop and its features from the last run in --scratch

The nightly samples at most `max_users_per_cutoff` users per label cut-off. At bench-scale's 10M-event
shop (250k users, 56 days, weekly cut-offs with 7-day labels) the whole population is ~10^8 candidate
rows, more than this machine holds. The training-set step builds and writes the set a part of the users
at a time and the train step streams it back part by part through tf.data (`features.example_parts`),
so memory follows the part, not the sample.

This bench makes the shop and runs the steps up to the features once (as `bench-scale` does), then for
each sample size the training-set and train steps, each in its own process: wall seconds, peak RSS,
rows, examples/s of the training epochs. From the largest sample it extrapolates the training time
of every user at every cut-off on this CPU: rows per list x every buyer's list at every cut-off,
over the measured examples/s, per epoch.

Writes bench/results/train_scale.json and train_scale.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import bench_scale  # noqa: E402  (the path above first)

RESULTS = ROOT / "bench" / "results"


def all_lists(work: Path) -> dict[str, int]:
    """Every user who buys in a cut-off's label window, per cut-off: the lists of the full population."""
    meta = json.loads((work / "dataset" / "meta.json").read_text())
    label_days = meta["training_set"]["label_days"]
    buys = pd.read_parquet(work / "interactions.parquet", columns=["user_key", "event_type", "event_time"])
    buys = buys[buys["event_type"] == "purchase"]
    out = {}
    for cutoff in meta["cutoffs"]:
        at = pd.Timestamp(cutoff)
        window = buys[(buys["event_time"] >= at) & (buys["event_time"] < at + pd.Timedelta(days=label_days))]
        out[cutoff] = int(window["user_key"].nunique())
    return out


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [p for p in report["samples"] if "failed" not in p]
    rows = [p["rows"] / 1e6 for p in points]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(rows, [p["training_set_s"] for p in points], "-o", label="training set")
    axes[0].plot(rows, [p["train_s"] for p in points], "-s", label="train (whole step)")
    axes[0].set_ylabel("seconds")
    axes[1].plot(rows, [p["training_set_rss_gb"] for p in points], "-o", label="training set")
    axes[1].plot(rows, [p["train_rss_gb"] for p in points], "-s", label="train")
    axes[1].set_ylabel("peak RSS (GB)")
    axes[2].plot(rows, [p["examples_per_s"] / 1e3 for p in points], "-o")
    axes[2].set_ylabel("training examples/s (thousands)")
    for ax in axes:
        ax.set_xlabel("training rows (millions)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"{report['events']:,}-event shop: training set and training by sample size (streamed)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, nargs="+", default=[2000, 8000, 20000, 30000],
                        help="users per cut-off")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per train (examples/s is per epoch)")
    parser.add_argument("--scratch", type=Path, default=ROOT / ".shoprank" / "bench-train-scale")
    parser.add_argument("--max-rss-gb", type=float, default=16.0)
    parser.add_argument("--reuse", action="store_true", help="keep the shop and features a run made in --scratch")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    work = args.scratch / f"events-{args.events}"
    print(f"shop of {args.events:,} events: {bench_scale.shop_sizes(args.events)}", flush=True)
    shop_file = work / "shop_run.json"
    if args.reuse and shop_file.exists():
        shop = json.loads(shop_file.read_text())
        print(f"reusing the shop and its features in {work} (made by code {shop['code']})", flush=True)
    else:
        shop = bench_scale.one_size(args.events, args.scratch, args.max_rss_gb or None,
                                    steps=bench_scale.STEPS[:bench_scale.STEPS.index("features") + 1])
        if "failed" in shop:
            raise SystemExit(f"the shop's steps failed: {shop['failed']}")
        shop_file.write_text(json.dumps(shop))
    env = bench_scale.shop_env(work)
    report = {"events": args.events, "users": shop["users"], "epochs": args.epochs,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "code": bench_scale.code_version(), "shop_steps_s": shop["steps"], "samples": []}
    for n in sorted(args.users):
        point: dict = {"users_per_cutoff": n}
        built = bench_scale.run_child("training_set", work, {**env, "BENCH_MAX_USERS": str(n)}, args.max_rss_gb)
        if "error" in built:
            point["failed"] = {"step": "training_set", **built}
        else:
            trained = bench_scale.run_child("train", work, {**env, "BENCH_EPOCHS": str(args.epochs)}, args.max_rss_gb)
            result = built["result"]
            point.update(training_set_s=built["seconds"], training_set_rss_gb=built["peak_rss_gb"],
                         parts=result["parts"], rows=result.get("train_rows", 0),
                         validation_rows=result.get("validation_rows", 0), test_rows=result.get("test_rows", 0))
            if "error" in trained:
                point["failed"] = {"step": "train", **trained}
            else:
                point.update(train_s=trained["seconds"], train_rss_gb=trained["peak_rss_gb"],
                             epoch_s=trained["result"]["train_seconds"] / max(trained["result"]["epochs"], 1),
                             examples_per_s=trained["result"]["examples_per_second"],
                             val_ndcg=trained["result"]["val_ndcg"], val_auc=trained["result"]["val_auc"])
        report["samples"].append(point)
        print(json.dumps(point), flush=True)
        (args.out / "train_scale.json").write_text(json.dumps(report, indent=2))

    done = [p for p in report["samples"] if "failed" not in p]
    if done:
        lists = all_lists(work)
        cutoffs = json.loads((work / "dataset" / "meta.json").read_text())["cutoffs"]
        train_cutoffs = cutoffs[:-2]  # the last two are validation and test
        largest = done[-1]
        drawn = sum(min(largest["users_per_cutoff"], lists[c]) for c in train_cutoffs)
        rows_per_list = largest["rows"] / max(drawn, 1)
        every = sum(lists[c] for c in train_cutoffs)
        rows_all = rows_per_list * every
        report["all_users"] = {"buyers_per_cutoff": lists, "train_lists": every, "rows_per_list": rows_per_list,
                               "train_rows": rows_all, "examples_per_s": largest["examples_per_s"],
                               "epoch_hours_cpu": rows_all / largest["examples_per_s"] / 3600,
                               "measured": drawn >= every,  # the largest sample held every buyer
                               "basis": f"the {largest['users_per_cutoff']:,}-users sample's rows per list and "
                                        "examples/s on this machine"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_scale.json").write_text(json.dumps(report, indent=2))
    plot(report, args.out / "train_scale.png")
    print(json.dumps(report.get("all_users", {}), indent=2))


if __name__ == "__main__":
    main()
