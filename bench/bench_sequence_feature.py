"""`make bench-sequence-feature`: does the sequence model's score help the ranker as an input?

The ranker could read, for every candidate, the sequence model's score of that item after the
shopper's history (`seq_score`, `SequenceRecommender.pair_scores`). Before that is wired into the
nightly and the online path (a feature every request must compute), this bench measures what it
buys, on the quality bench's temporal protocol (Ta Feng, test = February) with the served pipeline's
candidates:

- point-in-time: each label cut-off's rows are scored by a sequence model trained only on purchases
  before that cut-off, from the shopper's history before it; the test rows by one trained on
  everything before the test cut-off. No row's score has seen its label window. (This is the best
  case for the feature: the nightly would have to train one sequence model per cut-off to match it.)
- the same rows, candidates and seeds train the ranker with and without `seq_score` (one ranker per
  seed, no ensemble), so the paired difference per seed is the feature's effect.

Writes bench/results/sequence_feature.json. About 25 minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from shoprank.data.sources import open_source
from shoprank.evaluation.metrics import evaluate_rankings
from shoprank.evaluation.protocols import make_split
from shoprank.evaluation.quality import KS, ServedConfig, ServedPipeline, _rank_frame

RESULTS = Path(__file__).with_name("results")
FEATURE = "seq_score"
METRICS = ("recall@20", "ndcg@10")


def score_at(frame: pd.DataFrame, history: pd.DataFrame, at: pd.Timestamp, epochs: int, seed: int) -> tuple:
    """`seq_score` for `frame`'s rows (all at `at`) from a sequence model trained on `history` (events
    before `at`), and the model's facts."""
    from shoprank.models.sequence import SequenceConfig, SequenceRecommender
    from shoprank.models.sequence_input import item_sequences

    started = time.perf_counter()
    model = SequenceRecommender(SequenceConfig(seed=seed, epochs=epochs)).fit(history)
    histories = {str(u): [str(i) for i in seq] for u, seq in item_sequences(history).items()}
    scores = model.pair_scores(frame["user_key"].astype(str).tolist(), frame["item_id"].astype(str).tolist(),
                               histories)
    facts = {"at": str(at), "users": len(histories), "vocabulary": len(model.vocabulary),
             "epochs": len(model.history["loss"]), "fit_s": time.perf_counter() - started,
             "rows": len(frame), "scored_share": float((scores != 0).mean())}
    return scores, facts


def main(argv: list[str] | None = None) -> None:
    from shoprank.features.derived import NUMERIC_FEATURES, STRING_FEATURES, model_inputs
    from shoprank.models.train import TrainConfig, train_ranker

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sequence-epochs", type=int, default=8, help="the nightly's default")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    source = open_source("tafeng")
    events = pd.concat(source.events(), ignore_index=True)
    split = make_split("temporal", events)
    config = ServedConfig(ensemble=1, use_sequence=False)
    pipe = ServedPipeline(split, source.items(), config)
    pipe.prepare()
    frame = pipe.features(pipe.examples)
    test = pipe.features(pipe.test_candidates(None))
    times = split.train["event_time"]
    frame[FEATURE] = 0.0
    models = []
    for at in tqdm([*pipe.train_at, pipe.test_at], desc="sequence models, one per cut-off", unit="model"):
        target = test if at == pipe.test_at else frame
        rows = target["event_timestamp"] == at
        scores, facts = score_at(target.loc[rows], split.train[times < at], at, args.sequence_epochs, 0)
        target.loc[rows, FEATURE] = scores
        models.append(facts)
    fit_rows, val_rows = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]

    with_feature = ([*NUMERIC_FEATURES, FEATURE], STRING_FEATURES)
    runs: dict[str, list[dict]] = {"without": [], "with": []}
    alone = evaluate_rankings(_rank_frame(test, test[FEATURE].to_numpy(), max(KS), pipe.popular_full, None),
                              split.truth, KS, n_items=split.n_items)
    for seed in tqdm(args.seeds, desc="rankers", unit="seed"):
        for arm, features in (("without", None), ("with", with_feature)):
            result = train_ranker(fit_rows, val_rows, TrainConfig(epochs=config.epochs, batch_size=config.batch_size,
                                                                  seed=seed, loss=config.loss, monitor=config.monitor),
                                  verbose=0, features=features)
            inputs = model_inputs(test) if features is None else model_inputs(test, None, *features)
            scores = result.model.predict(inputs, batch_size=65536, verbose=0).reshape(-1)
            metrics = evaluate_rankings(_rank_frame(test, scores, max(KS), pipe.popular_full, None), split.truth,
                                        KS, n_items=split.n_items)
            runs[arm].append({"seed": seed, "epochs": len(result.history["loss"]),
                              **{m: metrics[m] for m in METRICS}})

    summary = {}
    for arm, points in runs.items():
        summary[arm] = {m: float(np.mean([p[m] for p in points])) for m in METRICS}
        summary[arm] |= {f"{m}_std": float(np.std([p[m] for p in points], ddof=1)) if len(points) > 1 else 0.0
                         for m in METRICS}
    paired = {m: [w[m] - wo[m] for w, wo in zip(runs["with"], runs["without"], strict=True)] for m in METRICS}
    report = {"protocol": "Ta Feng temporal (test = February), the served pipeline's candidates without the "
                          "sequence source; one ranker per seed and arm, no ensemble",
              "seeds": args.seeds, "sequence_epochs": args.sequence_epochs, "sequence_models": models,
              "runs": runs, "summary": summary,
              "paired_difference": {m: {"per_seed": v, "mean": float(np.mean(v)),
                                        "relative": float(np.mean(v)) / summary["without"][m]}
                                    for m, v in paired.items()},
              "sequence_score_alone": {m: alone[m] for m in METRICS}, "wall_s": time.perf_counter() - started}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sequence_feature.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({"summary": summary, "paired_difference": report["paired_difference"],
                      "alone": report["sequence_score_alone"]}, indent=2))


if __name__ == "__main__":
    main()
