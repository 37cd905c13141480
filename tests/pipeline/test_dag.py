"""The Airflow DAG loads, is scheduled daily without catch-up and exposes the run parameters."""

from airflow.dag_processing.dagbag import DagBag

from shoprank.settings import REPO_ROOT


def test_dag_loads_without_errors(home):
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags.get("shoprank_nightly")
    assert dag is not None
    assert dag.catchup is False
    assert dag.schedule == "@daily"
    assert set(dag.params) >= {"source", "source_path", "interval_start", "interval_end", "epochs"}
    assert dag.params["source"] == "tafeng"
    assert [t.task_id for t in dag.tasks] == ["run_pipeline"]


def test_dag_params_are_the_pipelines_with_their_descriptions(home):
    from shoprank.orchestration.params import DEFAULTS, describe

    dag = DagBag(dag_folder=str(REPO_ROOT / "dags")).dags["shoprank_nightly"]
    for name, default in DEFAULTS.arguments().items():
        param = dag.params.get_param(name)
        if name in ("interval_start", "interval_end"):
            assert param.value == ""  # the run's data interval unless overridden
        else:
            assert param.value == default and param.description == describe(name)[1]
