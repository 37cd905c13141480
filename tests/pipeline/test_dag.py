"""The Airflow DAGs load, the nightly is scheduled daily without catch-up, exposes the run parameters,
alerts on failure, has a deadline, and picks kfp.local or the KFP operator from the settings."""

from airflow.dag_processing.dagbag import DagBag

from shoprank.settings import REPO_ROOT


def test_dag_loads_without_errors(home):
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags.get("shoprank_nightly")
    assert dag is not None
    assert dag.catchup is False
    assert dag.timetable.expression == "0 0 * * *" and type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert set(dag.params) >= {"source", "source_path", "interval_start", "interval_end", "epochs"}
    assert dag.params["source"] == "tafeng"
    assert [t.task_id for t in dag.tasks] == ["resolve_arguments", "ingest", "validate", "publish", "pseudonymise",
                                              "run_pipeline"]
    private = ["ingest", "validate", "publish", "pseudonymise"]
    assert {dag.get_task(t).queue for t in private} == {"private-data"}  # the private zone's edge workers
    assert dag.get_task("run_pipeline").queue != "private-data"
    assert dag.get_task("ingest").retries == dag.get_task("validate").retries == 1  # NOT_RETRIED: the gate
    assert dag.get_task("run_pipeline").upstream_task_ids == {"resolve_arguments", "pseudonymise"}
    run = dag.get_task("run_pipeline")
    assert run.task_type == "_PythonDecoratedOperator" and run.retries == 1  # local: kfp.local in the task
    assert dag.get_task("resolve_arguments").retries == 0
    assert all(t.on_failure_callback for t in dag.tasks)
    (deadline,) = dag.deadline
    assert deadline.interval.total_seconds() == 6 * 3600


def test_cluster_profile_defers_to_kfp_and_links_the_run(home, monkeypatch):
    monkeypatch.setenv("SHOPRANK_KFP_HOST", "http://ml-pipeline-ui.kubeflow")
    monkeypatch.setenv("SHOPRANK_NIGHTLY_SCHEDULE", "0 2 * * *")
    monkeypatch.setenv("SHOPRANK_KFP_UI_HOST", "https://kfp.shop.example")
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["shoprank_nightly"]
    run = dag.get_task("run_pipeline")
    assert type(run).__name__ == "KfpRunOperator" and run.host == "http://ml-pipeline-ui.kubeflow"
    assert run.ui_host == "https://kfp.shop.example"  # the link a browser can open
    assert [link.name for link in run.operator_extra_links] == ["KFP run"]
    assert run.retries == 2 and dag.timetable.expression == "0 2 * * *"


def test_promote_dag_is_manual_and_asks_for_confirmation(home):
    dag = DagBag(dag_folder=str(REPO_ROOT / "dags")).dags["shoprank_promote"]
    assert dag.schedule is None
    assert dag.params["confirm"] is False and dag.params.get_param("action").schema["enum"] == [
        "to_version", "to_canary", "rollback"]
    assert [t.task_id for t in dag.tasks] == ["plan", "apply"]


def test_dag_params_are_the_pipelines_with_their_descriptions(home):
    from shoprank.orchestration.params import DEFAULTS, describe

    dag = DagBag(dag_folder=str(REPO_ROOT / "dags")).dags["shoprank_nightly"]
    for name, default in DEFAULTS.arguments().items():
        param = dag.params.get_param(name)
        if name in ("interval_start", "interval_end"):
            assert param.value == ""  # the run's data interval unless overridden
        else:
            assert param.value == default and param.description == describe(name)[1]


def test_backfill_creates_one_nightly_run_per_day(home):
    """`airflow backfill create` (what the README documents) plans one run per day of the range,
    each over its own day, the day the logical date names."""
    import subprocess
    import sys
    from pathlib import Path

    from shoprank.orchestration.airflow_env import airflow, airflow_env, migrate
    from shoprank.settings import load_settings

    settings = load_settings()
    migrate(settings)
    airflow(settings, "dags", "reserialize")
    planned = subprocess.run([str(Path(sys.executable).with_name("airflow")), "backfill", "create", "--dag-id",
                              "shoprank_nightly", "--from-date", "2001-02-01", "--to-date", "2001-02-03", "--dry-run"],
                             env=airflow_env(settings), capture_output=True, text=True, check=True).stdout
    dates = [line.split("|")[1].strip() for line in planned.splitlines() if line.startswith("| 2001-")]
    assert dates == ["2001-02-01 00:00:00+00:00", "2001-02-02 00:00:00+00:00", "2001-02-03 00:00:00+00:00"]


def test_features_refresh_is_hourly_over_the_hour_before(home):
    dag = DagBag(dag_folder=str(REPO_ROOT / "dags")).dags["shoprank_features_refresh"]
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable" and dag.timetable.expression == "0 * * * *"
    assert [t.task_id for t in dag.tasks] == ["roll_events", "validate_and_publish", "pseudonymise", "experiments",
                                              "materialise", "erasure_requests", "erasures"]
    assert dag.get_task("validate_and_publish").retries == 0 and dag.params["source"] == "served"
    private = {t.task_id for t in dag.tasks if t.queue == "private-data"}
    # roll_events and materialise see pseudonyms only; the erasure's private half resolves requests
    assert private == {"validate_and_publish", "pseudonymise", "erasure_requests"}
    assert dag.get_task("erasures").upstream_task_ids == {"erasure_requests"}
    assert dag.get_task("pseudonymise").upstream_task_ids == {"validate_and_publish"}
    assert dag.get_task("materialise").upstream_task_ids == {"pseudonymise"}
    assert dag.get_task("experiments").upstream_task_ids == {"roll_events"}
    assert dag.get_task("experiments").trigger_rule == "none_failed"  # a skipped roll (another source) still looks


def test_the_declared_tasks_are_the_dags_and_the_pipelines(home):
    """infra/policy/access.json declares what each task reads and writes, and where it runs (the docs'
    diagrams and the zone rules are made from it): its tasks are exactly the DAGs' and the
    pipeline's, and each runs where it is declared to."""
    import yaml

    from pipelines.nightly import COMPILED
    from shoprank.zones import access

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    declared = access()["tasks"]
    nightly, hourly = bag.dags["shoprank_nightly"], bag.dags["shoprank_features_refresh"]
    pipeline = next(yaml.safe_load_all(COMPILED.read_text()))
    kfp_tasks = {t for c in pipeline["components"].values() for t in c.get("dag", {}).get("tasks", {})}
    kfp_tasks |= set(pipeline["root"]["dag"]["tasks"])
    # push-2, push-3: the push component again (the search ranker's, the sequence model's), declared as push
    kfp_tasks = {t for t in kfp_tasks if not t.startswith(("condition-", "push-"))}
    in_airflow = {t.task_id for t in nightly.tasks} - {"resolve_arguments"}
    assert {n for n, t in declared.items() if t["flow"] == "nightly"} == in_airflow | kfp_tasks
    assert {n.removesuffix("_hour") for n, t in declared.items() if t["flow"] == "hourly"} == {
        t.task_id for t in hourly.tasks}
    for dag, suffix in ((nightly, ""), (hourly, "_hour")):
        for task in dag.tasks:
            spec = declared.get(task.task_id + suffix) or declared.get(task.task_id)
            if spec is not None and task.task_id != "resolve_arguments":
                assert spec["runs_on"] == f"airflow:{'private-data' if task.queue == 'private-data' else 'default'}", \
                    task.task_id
    assert all(declared[t]["runs_on"] == "kfp" for t in kfp_tasks)
