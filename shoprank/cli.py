"""`shoprank ...`: the command line for data and ML engineers.

Each command imports what it runs inside its function: `shoprank --help` or `shoprank events roll`
must not wait ~15 s for TensorFlow, Great Expectations or Airflow to load."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from shoprank.orchestration.params import DEFAULTS, describe
from shoprank.settings import load_settings
from shoprank.storage import open_for
from shoprank.validation.cli import add_validate_parser, run_validate


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.runner import run_night
    from shoprank.orchestration.params import NightlyParams

    arguments = NightlyParams(source=args.source, source_path=args.source_path or "", interval_start=args.start,
                              interval_end=args.end, n_snapshots=args.n_snapshots, max_users_per_cutoff=args.max_users,
                              epochs=args.epochs, sequence_epochs=args.sequence_epochs, seed=args.seed,
                              search_trials=args.search_trials, ensemble=args.ensemble,
                              push_label=args.label).arguments()
    from shoprank.locks import LockHeld

    try:
        outcome = run_night(arguments, wait_for_lock_s=args.wait_for_lock)
    except LockHeld as err:
        print(f"error: {err}", file=sys.stderr)
        return 75  # EX_TEMPFAIL: try again later
    except RuntimeError as err:  # a failed task (the gate included) has already logged its reason
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(outcome.__dict__, indent=2))
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from pipelines.nightly import compile_pipeline

    print(compile_pipeline(Path(args.output)) if args.output else compile_pipeline())
    return 0


def cmd_serve_models(args: argparse.Namespace) -> int:
    from shoprank.serving.model_server.batching import DEFAULT_BATCHING_FILE, load_batching_parameters
    from shoprank.serving.model_server.server import ModelServer

    settings = load_settings()
    try:
        batching = load_batching_parameters(args.batching_parameters_file or DEFAULT_BATCHING_FILE) \
            if args.enable_batching else None
    except (OSError, ValueError) as err:
        print(f"error: batching parameters: {err}", file=sys.stderr)
        return 2
    ModelServer(args.base_path or settings.models, args.rest_port, args.grpc_port, host=args.host,
                poll_seconds=args.poll_seconds, endpoint_url=settings.s3_endpoint_url or None,
                batching=batching).serve_forever()
    return 0


def cmd_serve_api(args: argparse.Namespace) -> int:
    from shoprank.serving.api.serve import serve_api

    return serve_api(args.host, args.port, args.workers, args.internal_port)


def _subject(user_id: str | None, pseudonym: str | None) -> dict[str, str] | None:
    """The shopper as the online path names them: a pseudonym given as it is, or a raw id made into
    its pseudonyms with the keys this process holds (an operator's tool of the private zone: only it
    has them)."""
    from shoprank.identity.subjects import subject_for
    from shoprank.serving.api.users import ANY_KEY

    if pseudonym:
        return {ANY_KEY: pseudonym}
    return subject_for(user_id, load_settings().home) if user_id else None


def cmd_privacy(args: argparse.Namespace) -> int:
    """Erasure and the private pseudonymiser (the private zone: they need the key)."""
    from shoprank.features.identities import remember
    from shoprank.features.pseudonymise import MissingKeyError, current_key, pseudonym
    from shoprank.orchestration import erasure
    from shoprank.storage import open_for

    settings = load_settings()
    try:
        if args.action == "forget":
            if not args.user_ids:
                print("error: privacy forget needs at least one USER_ID", file=sys.stderr)
                return 2
            print(json.dumps(erasure.forget(args.user_ids, settings, args.raw_root or "", args.kfp_root or ""),
                             indent=2))
        elif args.action == "apply-requests":  # the private half of what admins queued
            print(json.dumps(erasure.apply_requests(settings), indent=2))
        elif args.action == "apply-public":  # the public half of every erasure not done yet
            print(json.dumps(erasure.apply_public(settings, args.kfp_root or ""), indent=2))
        else:  # pseudonym: what a server-to-server caller of the private zone names a shopper by
            key = current_key(settings.home)
            remember(open_for(settings), args.user_ids)
            for user_id in args.user_ids:
                print(pseudonym(user_id, key.secret))
    except (MissingKeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from shoprank.serving.api.recommender import OnlineRecommender
    from shoprank.serving.model_server.client import ModelServerError

    subject = _subject(args.user_id, args.subject)
    recommender = OnlineRecommender(load_settings()).load(refresh_seconds=None)
    try:
        result = recommender.recommend_blocking(subject, args.k)
    except ModelServerError as err:
        print(f"error: {err}\n(start the model server with `shoprank serve-models`)", file=sys.stderr)
        return 3
    finally:
        recommender.close()
    if args.json:
        print(json.dumps({"model_version": result.model_version, "cold_start": result.cold_start,
                          "items": [r.__dict__ for r in result.items]}, indent=2))
    else:
        _print_shown(result.items)
    return 0


def _print_shown(items, title: str = "") -> None:
    if title:
        print(title)
    for rec in items:
        score = f"{rec.score:.4f}" if rec.score is not None else "  -   "
        why = rec.reason["template"] + "".join(f" {v}" for v in rec.reason["args"].values())
        print(f"{rec.position:>3}  {rec.item_id:<16} {score}  {rec.source:<8} {rec.rule or '':<16} "
              f"{rec.category or '':<12} {why}")


def cmd_rules(args: argparse.Namespace) -> int:
    """The merchandisers' rule set: `show` it and its audit log, `publish` a file (checked first), or
    `preview` what a shopper gets before and after a file, without publishing it."""
    from datetime import UTC, datetime

    from shoprank.layout import RULES_AUDIT_PREFIX, RULES_KEY
    from shoprank.serving.decision.published import PublishConflict, audit_log, publish_rules
    from shoprank.serving.decision.rules import RulesError, parse_rules
    from shoprank.storage import open_for

    settings = load_settings()
    store = open_for(settings)
    try:
        if args.action == "show":
            current = store.read_versioned(RULES_KEY)
            print(current[0].decode() if current else "(no rule set published: none apply)")
            for record in audit_log(store, RULES_AUDIT_PREFIX):
                print(f"# {record['when']}  {record['who']}: {record['previous_version']} -> {record['version']}")
            return 0
        if not args.rules:
            print(f"error: rules {args.action} needs --rules FILE", file=sys.stderr)
            return 2
        text = Path(args.rules).read_text()
        if args.action == "publish":
            who = args.who or os.environ.get("USER", "cli")
            published = publish_rules(store, RULES_KEY, RULES_AUDIT_PREFIX, text, who, datetime.now(UTC),
                                      args.based_on)
            print(f"published rule set {published.version!r} as {who}")
            return 0
        trial = parse_rules(text, args.rules)
    except (RulesError, PublishConflict, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return _preview(settings, trial, _subject(args.user_id, args.subject), args.k)


def _preview(settings, trial, subject, k: int) -> int:
    from shoprank.serving.api.recommender import OnlineRecommender
    from shoprank.serving.model_server.client import ModelServerError

    recommender = OnlineRecommender(settings).load(refresh_seconds=None)
    live = recommender.context.catalogue
    try:
        before = recommender.recommend_blocking(subject, k)
        live.preview = trial
        after = recommender.recommend_blocking(subject, k)
    except ModelServerError as err:
        print(f"error: {err}\n(start the model server with `shoprank serve-models`)", file=sys.stderr)
        return 3
    finally:
        live.preview = None
        recommender.close()
    _print_shown(before.items, f"before (served rule set {live.rules.version!r}):")
    _print_shown(after.items, f"after ({trial.version!r}):")
    moved = [r.item_id for r in after.items if r.item_id not in {b.item_id for b in before.items}]
    print(f"{len(moved)} item(s) new in the answer: {', '.join(moved) or '-'}")
    return 0


def cmd_catalogue(args: argparse.Namespace) -> int:
    """The day's catalogue feeds from a file (JSON array, CSV or parquet): `availability` (stock and
    prices) or `items` (added or changed, checked by the gate's catalogue checks)."""
    import pandas as pd

    from shoprank.serving.decision.catalogue_feed import FeedError, put_availability, put_items
    from shoprank.serving.decision.live_catalogue import LiveCatalogue
    from shoprank.storage import open_for
    from shoprank.validation.catalogue_checks import catalogue_errors

    path = Path(args.file)
    try:
        if path.suffix == ".json":
            rows = json.loads(path.read_text())
        else:
            frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"item_id": str})
            rows = json.loads(frame.to_json(orient="records"))
        store = open_for(load_settings())
        if args.action == "availability":
            live = LiveCatalogue(store, log=lambda _: None)
            live.load_night()
            live.refresh()
            result = put_availability(store, rows, str(path), live.knows)
        else:
            import time

            result = put_items(store, rows, str(path), time.time(), catalogue_errors)
    except (FeedError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{result.applied} row(s) applied; the feed holds {result.total} item(s)")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    import tempfile

    from shoprank.serving.api.recommender import OnlineRecommender
    from shoprank.serving.api.searcher import LiveSearchIndex, OnlineSearch

    if not args.query.strip():
        print("error: the query is empty", file=sys.stderr)
        return 2
    recommender = OnlineRecommender(load_settings()).load(refresh_seconds=None)
    try:
        live = LiveSearchIndex(recommender.models, Path(tempfile.gettempdir()) / "shoprank-search-index")
        live.refresh()
        if live.index is None:
            print(f"error: {live.last_error} (the nightly `index` step publishes one)", file=sys.stderr)
            return 3
        searcher = OnlineSearch(recommender.context, live)
        subject = _subject(args.user_id, args.subject)
        result = recommender.run_blocking(lambda: searcher.search(args.query, subject, args.k))
    finally:
        recommender.close()
    if args.json:
        print(json.dumps({"personalised": result.personalised, "reason": result.reason,
                          "model_version": result.model_version, "index_version": result.index_version,
                          "items": [r.__dict__ for r in result.items]}, indent=2, ensure_ascii=False))
    else:
        print(f"index v{result.index_version}, {result.matched} matching items, "
              f"{'search ranker v' + str(result.model_version) if result.personalised else result.reason}")
        _print_shown(result.items)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    import getpass

    from shoprank.serving.registry import promotions
    from shoprank.serving.registry.push import server_waiter

    settings = load_settings()
    store = open_for(settings, "models")
    try:
        chosen = promotions.plan(store, args.model, "to_version" if args.to else "rollback", args.to)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    promotions.apply(store, chosen, actor=f"cli:{getpass.getuser()}", reason="shoprank rollback",
                     wait_loaded=server_waiter(settings.model_server_url, args.model))
    print(f"{args.model}: stable -> version {chosen.to_version}")
    return 0


def cmd_experiments(args: argparse.Namespace) -> int:
    """`status`: every experiment, its arms and what their shoppers did, the always-valid interval and
    the decision with its reason (looked at now, nothing done); `start FILE`: publish an experiment;
    `evaluate`: the hourly look, acted on."""
    from shoprank.evaluation.experiments.config import ExperimentError, parse_experiment, read_experiments
    from shoprank.orchestration import experiments as hourly

    settings = load_settings()
    models = open_for(settings, "models")
    try:
        if args.action == "start":
            if not args.file:
                print("error: `experiments start` needs the experiment's JSON file", file=sys.stderr)
                return 2
            experiment = parse_experiment(json.loads(Path(args.file).read_text()))
            hourly.start_experiment(models, experiment)
            print(f"started {experiment.name} on /{experiment.route}: "
                  + ", ".join(f"{a.name} {a.share:.0%} ({a.serves})" for a in experiment.arms))
            return 0
        if args.action == "evaluate":
            for record in hourly.evaluate_experiments(settings):
                print(f"{record['experiment']}: {record['action']}: {record['reason']}")
            return 0
        experiments = read_experiments(models)
    except (ExperimentError, OSError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not experiments:
        print("no experiments")
    served = open_for(settings, "served")
    for experiment in experiments:
        if not args.name or experiment.name == args.name:
            print("\n".join(hourly.status_lines(experiment, served, models)))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from shoprank.data.sources.synthetic import write_synthetic

    print(write_synthetic(args.output, n_events=args.events, n_users=args.users, n_items=args.items,
                          days=args.days, seed=args.seed))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from shoprank.features.pseudonymise import MissingKeyError, create_key, load_keys

    settings = load_settings()
    if args.action == "create":
        path, created = create_key(settings.home)
        print(f"{'created' if created else 'kept the existing'} pseudonymisation key {path}")
    try:
        for number, key in enumerate(load_keys(settings.home)):
            print(f"{'current' if number == 0 else 'next':<8} key id {key.id}  ({key.source})")
    except MissingKeyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def cmd_feature_repo(args: argparse.Namespace) -> int:
    from shoprank.features.store import ensure_session_source, write_feature_store_yaml

    settings = load_settings()
    ensure_session_source(settings)  # so `feast materialize` finds every view's batch source
    print(write_feature_store_yaml(settings, Path(args.repo)))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    """Roll the API's event log into hourly parquet; `export` then writes what is stored."""
    import pandas as pd

    from shoprank.data import served
    from shoprank.locks import LockHeld

    settings = load_settings()
    store = open_for(settings, "served")
    log_dir = Path(args.log_dir) if args.log_dir else settings.event_log_dir
    if args.action == "status":
        print(json.dumps(served.roll_health(log_dir, store).as_dict(), indent=2))
        return 0
    if args.retry_quarantined:
        back = served.retry_quarantined(log_dir, store)
        print(f"brought back {len(back)} quarantined segment(s) or part(s): {', '.join(back) or '-'}", file=sys.stderr)
    try:
        rolled = served.roll(log_dir, store, log=lambda line: print(line, file=sys.stderr))
    except LockHeld as err:
        print(f"error: {err}", file=sys.stderr)
        return 75
    print(f"rolled {rolled.segments} closed segment(s) of {log_dir}: {rolled.events} events, "
          f"{rolled.requests} served lists, {rolled.duplicates} repeat(s) dropped; {len(rolled.failed)} kept after "
          f"a data error, {len(rolled.quarantined)} quarantined", file=sys.stderr)
    if args.action == "export":
        if not args.out:
            print("error: events export needs OUT, the folder to write", file=sys.stderr)
            return 2
        bound = [pd.Timestamp(t, tz="UTC") if t else None for t in (args.start, args.end)]
        counts = served.export(store, args.out, *bound)
        print(json.dumps({"out": str(args.out), **counts}))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from shoprank.demo import run_demo

    return run_demo(max_users=args.max_users, epochs=args.epochs)


def cmd_airflow(args: argparse.Namespace) -> int:
    from shoprank.orchestration import airflow_local

    settings = load_settings()
    if args.action == "cli":
        from shoprank.orchestration.airflow_env import airflow

        return airflow(settings, *args.airflow_args, check=False).returncode
    if args.action == "stop":
        stopped = airflow_local.stop(settings, args.port)
        print("Airflow stopped" if stopped else "Airflow was not running")
        return 0
    where = airflow_local.local_airflow(settings, args.port)
    if args.action == "status":
        pid = airflow_local.running_pid(where)
        print(f"Airflow {'running (pid ' + str(pid) + ')' if pid else 'not running'}; "
              f"{'healthy' if airflow_local.healthy(where) else 'not healthy'} at {where.url}")
        return 0 if pid else 1
    where = airflow_local.start(settings, args.port)
    print(f"Airflow UI: {where.url}  (login {airflow_local.USER} / {airflow_local.PASSWORD})\n"
          f"DAGs: {', '.join(sorted(p.stem for p in (Path(__file__).parent.parent / 'dags').glob('*.py')))}"
          f" (paused until you unpause them)\nlogs: {where.log_file} and {where.home / 'logs'}\n"
          f"stop: make airflow-stop")
    return 0


def cmd_zones(args: argparse.Namespace) -> int:
    """Run the zone split on this machine until interrupted: an IAM-enforcing S3 server, one user and
    one env file per zone."""
    import time

    from shoprank.orchestration.enforcement import start_zones
    from shoprank.zones import zone_grants

    settings = load_settings()
    folder = Path(args.dir).resolve()
    private_home = folder / "private-home"
    key = os.environ.get("SHOPRANK_PSEUDONYM_KEY")
    if not key:  # made on the private side: the public home never holds a key file to fall back on
        from shoprank.features.pseudonymise import create_key, key_file

        create_key(private_home)
        key = key_file(private_home).read_text().strip()
    zones = start_zones(folder, public_home=settings.home, private_home=private_home, pseudonym_key=key)
    print(f"S3 with IAM enforced at {zones.endpoint}, bucket {zones.bucket}")
    for zone in ("private", "public"):
        grants = zone_grants(zone)
        print(f"  {zone}: {zones.env(zone)}\n    reads {', '.join(grants['read'])}\n"
              f"    writes {', '.join(grants['write'])}")
    print(f"use it: `set -a; . {zones.env('public')}; set +a` then `shoprank run` or `make demo`\n"
          f"(the private tasks start with {zones.env('private').name}); Ctrl-C stops the server")
    try:
        while zones.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        zones.stop()
    return 0


def cmd_kfp(args: argparse.Namespace) -> int:
    from shoprank.orchestration.kfp_root import purge_raw_artifacts
    from shoprank.storage import open_store

    settings = load_settings()
    root = args.root or str(settings.home / "kfp")
    purge = purge_raw_artifacts(open_store(root, settings.s3_endpoint_url or None), dry_run=not args.yes)
    print(json.dumps({"root": root, "dry_run": not args.yes, **purge.as_dict()}, indent=2))
    if not args.yes and purge.matched:
        print("nothing deleted: run again with --yes to delete them", file=sys.stderr)
    return 0


def cmd_tokens(args: argparse.Namespace) -> int:
    """The private zone's token issuer: `keygen` once, then `issue USER_ID` per shopper session."""
    from shoprank.features.pseudonymise import MissingKeyError
    from shoprank.identity.tokens import TokenIssuer, create_signing_key

    settings = load_settings()
    private = Path(settings.resolve(settings.token_signing_key))
    if args.action == "keygen":
        public = Path(settings.resolve(settings.token_public_keys.split(",")[0]))
        try:
            kid = create_signing_key(private, public)
        except FileExistsError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(json.dumps({"key_id": kid, "private": str(private), "public": str(public)}))
        return 0
    if not args.user_id:
        print("error: tokens issue needs USER_ID", file=sys.stderr)
        return 2
    try:
        issuer = TokenIssuer.from_settings(settings, ttl_s=args.ttl)
    except (OSError, MissingKeyError, ValueError) as err:
        print(f"error: cannot issue tokens here: {err}", file=sys.stderr)
        return 1
    from shoprank.features.identities import remember
    from shoprank.storage import open_for

    token = issuer.issue(args.user_id)
    remember(open_for(settings), [args.user_id])  # so the API's events for this shopper resolve back
    print(token)
    return 0


def cmd_api_keys(args: argparse.Namespace) -> int:
    from shoprank.identity.api_keys import ApiKeys

    keys = ApiKeys(Path(load_settings().resolve(load_settings().api_keys_file)))
    try:
        if args.action == "create":
            print(keys.create(args.name or "", [s for s in (args.scopes or "").split(",") if s]))
        elif args.action == "revoke":
            keys.revoke(args.name or "")
        else:
            print(json.dumps(keys.list(), indent=2))
    except (ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoprank", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the nightly pipeline (kfp.local, or the KFP host in the cluster profile)")
    for flag, name in (("--source", "source"), ("--source-path", "source_path"), ("--start", "interval_start"),
                       ("--end", "interval_end"), ("--n-snapshots", "n_snapshots"),
                       ("--max-users", "max_users_per_cutoff"), ("--epochs", "epochs"),
                       ("--sequence-epochs", "sequence_epochs"), ("--seed", "seed"),
                       ("--search-trials", "search_trials"), ("--ensemble", "ensemble"), ("--label", "push_label")):
        default, description, schema = describe(name)
        run.add_argument(flag, default=default, type=type(default), help=description,
                         **({"choices": schema["enum"]} if "enum" in schema else {}))
    run.add_argument("--wait-for-lock", type=float, default=0.0,
                     help="seconds to wait when another nightly run holds the lock (default: fail at once)")
    run.set_defaults(func=cmd_run)

    comp = sub.add_parser("compile", help="compile the KFP pipeline to YAML for the KFP UI")
    comp.add_argument("--output", default="")
    comp.set_defaults(func=cmd_compile)

    serve = sub.add_parser("serve-models", help="TF-Serving-compatible REST+gRPC server over the model base path")
    serve.add_argument("--base-path", default="")
    serve.add_argument("--rest-port", type=int, default=8501)
    serve.add_argument("--grpc-port", type=int, default=8500)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a pod)")
    serve.add_argument("--poll-seconds", type=float, default=1.0, help="how often the base path is checked")
    serve.add_argument("--enable-batching", action="store_true", help="merge concurrent requests (TF Serving's flag)")
    serve.add_argument("--batching-parameters-file", default=None,
                       help="TF Serving BatchingParameters text file (used with --enable-batching; default: "
                            "the one the serving bench chose, shoprank/serving/model_server/batching.config)")
    serve.set_defaults(func=cmd_serve_models)

    api = sub.add_parser("serve-api", help="the online recommendation API")
    api.add_argument("--host", default=os.environ.get("SHOPRANK_API_HOST", "127.0.0.1"),
                     help="address to bind (0.0.0.0 in a pod; env SHOPRANK_API_HOST)")
    api.add_argument("--port", type=int, default=8080)
    api.add_argument("--internal-port", type=int, default=None,
                     help="the operator's port for /metrics, /docs, /readyz (default: setting internal_port, 9090; "
                          "0: everything on --port)")
    api.add_argument("--workers", type=int, default=int(os.environ.get("SHOPRANK_API_WORKERS", "1")),
                     help="worker processes (env SHOPRANK_API_WORKERS)")
    api.set_defaults(func=cmd_serve_api)

    rec = sub.add_parser("recommend", help="top-K items for a user, from Feast online features + the model server "
                                           "(an operator's tool: a raw USER_ID needs the pseudonymisation key)")
    rec.add_argument("user_id", nargs="?", help="the shopper's id (the private zone) or omit with --subject")
    rec.add_argument("--subject", help="the shopper's pseudonym instead of their id")
    rec.add_argument("-k", type=int, default=10)
    rec.add_argument("--json", action="store_true")
    rec.set_defaults(func=cmd_recommend)
    find = sub.add_parser("search", help="items matching a query, personalised for a known user")
    find.add_argument("query")
    find.add_argument("--user-id", default=None,
                      help="a shopper's id (omit: anonymous; needs the pseudonymisation key)")
    find.add_argument("--subject", default=None, help="a shopper's pseudonym instead of their id")
    find.add_argument("-k", type=int, default=10)
    find.add_argument("--json", action="store_true")
    find.set_defaults(func=cmd_search)

    rules = sub.add_parser("rules", help="the merchandisers' rule set: `show` it and its audit log, `publish "
                                         "--rules FILE`, `preview [USER_ID] --rules FILE` (before and after)")
    rules.add_argument("action", choices=["show", "publish", "preview"])
    rules.add_argument("user_id", nargs="?", help="preview: the shopper's id (needs the key) or omit (anonymous)")
    rules.add_argument("--subject", help="preview: the shopper's pseudonym instead of their id")
    rules.add_argument("--rules", help="the rule set (TOML)")
    rules.add_argument("--based-on", default=None, help="publish: the version this file was edited from "
                                                        "(refused if someone published since)")
    rules.add_argument("--who", default=None, help="publish: who, for the audit log (default $USER)")
    rules.add_argument("-k", type=int, default=10)
    rules.set_defaults(func=cmd_rules)
    cat = sub.add_parser("catalogue", help="the day's catalogue feeds from a file (JSON array, CSV, parquet): "
                                           "`availability FILE` (item_id, in_stock, price) or `items FILE`")
    cat.add_argument("action", choices=["availability", "items"])
    cat.add_argument("file")
    cat.set_defaults(func=cmd_catalogue)

    rb = sub.add_parser("rollback", help="point the `stable` label at an earlier model version")
    rb.add_argument("--model", default="ranker")
    rb.add_argument("--to", type=int, default=None)
    rb.set_defaults(func=cmd_rollback)

    exp = sub.add_parser("experiments", help="online experiments: `status` (arms, metrics, intervals, decision), "
                                             "`start FILE` (publish one), `evaluate` (the hourly look, acted on)")
    exp.add_argument("action", choices=["status", "start", "evaluate"])
    exp.add_argument("file", nargs="?", help="start: the experiment's JSON")
    exp.add_argument("--name", help="status: only this experiment")
    exp.set_defaults(func=cmd_experiments)

    syn = sub.add_parser("synth", help="write a seeded synthetic shop as canonical parquet")
    syn.add_argument("output")
    syn.add_argument("--events", type=int, default=100_000)
    syn.add_argument("--users", type=int, default=5_000)
    syn.add_argument("--items", type=int, default=2_000)
    syn.add_argument("--days", type=int, default=28)
    syn.add_argument("--seed", type=int, default=7)
    syn.set_defaults(func=cmd_synth)

    keys = sub.add_parser("keys", help="the pseudonymisation key: `create` a local one (never overwrites), `show` ids")
    keys.add_argument("action", choices=["create", "show"])
    keys.set_defaults(func=cmd_keys)

    repo = sub.add_parser("feature-repo", help="write feature_repo/feature_store.yaml from the active settings "
                                               "(for `feast apply`, `feast ui`, ...)")
    repo.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent / "feature_repo"))
    repo.set_defaults(func=cmd_feature_repo)

    events = sub.add_parser("events", help="the events taken back by POST /events: `roll` the API's log into "
                                           "hourly parquet, `export OUT` what is stored as parquet, `status`")
    events.add_argument("action", choices=["roll", "export", "status"],
                        help="status: the roll's health as JSON (oldest unrolled segment, quarantined, failing)")
    events.add_argument("--retry-quarantined", action="store_true",
                        help="roll/export: first bring quarantined segments and parts back to be rolled again")
    events.add_argument("out", nargs="?", help="export: the folder to write (replaced whole)")
    events.add_argument("--log-dir", help="the event log folder (default: settings event_log)")
    events.add_argument("--start", help="export: events at or after this time (UTC)")
    events.add_argument("--end", help="export: events before this time (UTC)")
    events.set_defaults(func=cmd_events)
    air = sub.add_parser("airflow", help="the local Airflow 3 (UI, scheduler, dag-processor, triggerer) over dags/")
    air.add_argument("action", choices=["start", "stop", "status", "cli"],
                     help="cli: the `airflow` CLI against the project's Airflow, e.g. `cli backfill create ...`")
    air.add_argument("airflow_args", nargs=argparse.REMAINDER, help="arguments of `airflow` (with cli)")
    air.add_argument("--port", type=int, default=None, help="UI/API port (default: AIRFLOW_PORT or 8080)")
    air.set_defaults(func=cmd_airflow)
    tokens = sub.add_parser("tokens", help="private zone: `keygen` the Ed25519 token signing key, `issue USER_ID` "
                                           "a shopper token (its subject is the pseudonym)")
    tokens.add_argument("action", choices=["keygen", "issue"])
    tokens.add_argument("user_id", nargs="?", help="issue: the shopper's id as the shop knows it")
    tokens.add_argument("--ttl", type=int, default=1800, help="issue: lifetime in seconds (at most a day)")
    tokens.set_defaults(func=cmd_tokens)
    api_keys = sub.add_parser("api-keys", help="server-to-server API keys: `create NAME --scopes a,b` (shown once), "
                                               "`revoke KEY_ID`, `list`")
    api_keys.add_argument("action", choices=["create", "revoke", "list"])
    api_keys.add_argument("name", nargs="?", help="create: the caller's name; revoke: the key id")
    api_keys.add_argument("--scopes", help="create: comma-separated, of read, events:write, events:purchase, admin")
    api_keys.set_defaults(func=cmd_api_keys)
    zones = sub.add_parser("zones", help="`up`: the zone split on this machine (an S3 server enforcing IAM, one "
                                         "user and env file per zone, from infra/policy/access.json)")
    zones.add_argument("action", choices=["up"])
    zones.add_argument("--dir", default=".zones", help="where the env files and the server's log go")
    zones.set_defaults(func=cmd_zones)
    privacy = sub.add_parser("privacy", help="`forget USER_ID...` everywhere (erasure, with a report); "
                                             "`apply-requests`: the private half of what admins queued through the "
                                             "API; `apply-public`: the public half of every erasure; `pseudonym "
                                             "USER_ID...` for server-to-server callers (private zone)")
    privacy.add_argument("action", choices=["forget", "apply-requests", "apply-public", "pseudonym"])
    privacy.add_argument("user_ids", nargs="*", help="the shoppers' ids as the shop knows them")
    privacy.add_argument("--raw-root", help="forget: where the shop's exports are kept as parquet (rows dropped)")
    privacy.add_argument("--kfp-root", help="forget: the KFP pipeline root (default: the local one under home)")
    privacy.set_defaults(func=cmd_privacy)
    kfp = sub.add_parser("kfp", help="`purge-raw-artifacts`: delete what the retired ingest/validate/features "
                                     "tasks left under the KFP pipeline root (raw ids, queries)")
    kfp.add_argument("action", choices=["purge-raw-artifacts"])
    kfp.add_argument("--root", help="the pipeline root (s3://bucket/kfp/ on the cluster; default: the local one)")
    kfp.add_argument("--yes", action="store_true", help="delete (without it: only list what would go)")
    kfp.set_defaults(func=cmd_kfp)
    demo = sub.add_parser("demo", help="the whole nightly flow on Ta Feng, then served recommendations")
    demo.add_argument("--max-users", type=int, default=DEFAULTS.max_users_per_cutoff)
    demo.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    demo.set_defaults(func=cmd_demo)

    add_validate_parser(sub).set_defaults(func=run_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
