"""The feature job's SparkApplication: its spec agrees with the infra manifest, and the runner creates,
watches, streams, fails, times out and cleans up as the operator's status says, against a fake API that
answers with the shapes the Kubernetes API returns (dicts from CustomObjectsApi, str from the pod log
call, ApiException with the API's Status body for errors)."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from shoprank.features.engine import spark_application as sa

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "infra" / "k8s" / "jobs" / "feature-job" / "sparkapplication.yaml"
VERSIONS = REPO / "infra" / "k8s" / "platform" / "versions.env"
NS = "shoprank"
NAME = "shoprank-features-0f6c2a4e-1b7d-4c38-9a51-2d3e8f0b9c17"
POD = f"{NAME}-driver"
ARGS = sa.feature_job_arguments(
    interactions="s3a://features/features/crossing/nightly/b1/interactions.parquet",
    items="s3a://features/features/crossing/nightly/b1/catalogue.parquet",
    at=["2026-11-26T00:00:00+00:00", "2026-12-03T00:00:00+00:00"], out="s3a://features/features/engine/")
SUMMARY = {"engine": "spark", "rows": {"user_stats": 1200, "item_stats": 300, "item_neighbours": 6000},
           "snapshots": ["2026-11-26 00:00:00+00:00", "2026-12-03 00:00:00+00:00"]}


def versions() -> dict[str, str]:
    return dict(line.split("=", 1) for line in VERSIONS.read_text().splitlines()
                if "=" in line and not line.startswith("#"))


def image() -> str:
    v = versions()
    return f"{v['SHOPRANK_IMAGE']}:{v['SHOPRANK_IMAGE_TAG']}@{v['SHOPRANK_IMAGE_DIGEST']}"


def spec(**kw) -> sa.SparkApplicationSpec:
    return sa.SparkApplicationSpec(**{"name": NAME, "namespace": NS, "image": image(), "arguments": ARGS, **kw})


# --- recorded shapes -------------------------------------------------------------------------------------
def api_error(status: int, reason: str, message: str) -> ApiException:
    """An ApiException as the client raises it: the HTTP status and reason, the API's Status as body."""
    err = ApiException(status=status, reason=reason)
    err.body = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": message, "reason": reason.replace(" ", ""), "code": status})
    return err


def forbidden(verb: str, resource: str, group: str = "") -> ApiException:
    what = f"{resource}.{group}" if group else resource
    return api_error(403, "Forbidden",
                     f'{what} is forbidden: User "system:serviceaccount:kubeflow:pipeline-runner" cannot {verb} '
                     f'resource "{resource}" in API group "{group}" in the namespace "{NS}"')


def status(state: str, *, attempts: int = 1, submissions: int = 1, error: str = "", executors: dict | None = None,
           submission_id: str = "6c1f1e0a-52d4-4c1e-a0a3-9f6a7d2b1e10") -> dict:
    """`.status` of a SparkApplication as the operator writes it (v1beta2)."""
    app_state = {"state": state, **({"errorMessage": error} if error else {})}
    return {"applicationState": app_state,
            "driverInfo": {"podName": POD, "webUIAddress": "172.20.14.9:4040", "webUIPort": 4040,
                           "webUIServiceName": f"{NAME}-ui-svc"},
            "executionAttempts": attempts, "executorState": executors or {},
            "lastSubmissionAttemptTime": "2026-12-03T01:02:03Z", "sparkApplicationId": "spark-7d5b0f4c8e2a4c0b",
            "submissionAttempts": submissions, "submissionID": submission_id, "terminationTime": None}


class Clock:
    """Time that moves only when the runner sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


class Cluster:
    """A CustomObjectsApi and a CoreV1Api over one scripted run: the n-th status read returns the n-th
    step's status (the last one repeats) and appends that step's lines to the driver pod's log."""

    def __init__(self, steps: list[tuple[dict | None, list[str]]], *, existing: dict | None = None,
                 create_error: Exception | None = None, log_errors: list[Exception] | None = None,
                 get_errors: dict[int, BaseException] | None = None, delete_error: Exception | None = None):
        self.steps = steps
        self.existing = existing
        self.create_error = create_error
        self.log_errors = list(log_errors or [])
        self.get_errors = dict(get_errors or {})
        self.delete_error = delete_error
        self.created: list[dict] = []
        self.deleted: list[tuple[str, str]] = []
        self.gets = 0
        self.log_calls: list[dict] = []
        self.pods: dict[str, list[str]] = {}
        self.stamp = 0

    # CustomObjectsApi
    def create_namespaced_custom_object(self, group, version, namespace, plural, body, **kw):
        assert (group, version, plural) == ("sparkoperator.k8s.io", "v1beta2", "sparkapplications")
        if self.create_error is not None:
            raise self.create_error
        if self.existing is not None:
            raise api_error(409, "Conflict",
                            f'sparkapplications.sparkoperator.k8s.io "{body["metadata"]["name"]}" already exists')
        self.created.append(body)
        self.existing = {**body, "metadata": {**body["metadata"], "uid": "a3b9", "resourceVersion": "1",
                                              "generation": 1, "creationTimestamp": "2026-12-03T01:02:00Z"}}
        return self.existing

    def get_namespaced_custom_object(self, group, version, namespace, plural, name, **kw):
        self.gets += 1
        if self.gets in self.get_errors:
            raise self.get_errors.pop(self.gets)
        if self.existing is None:
            raise api_error(404, "Not Found", f'sparkapplications.sparkoperator.k8s.io "{name}" not found')
        app_status, lines = self.steps[min(self.gets, len(self.steps)) - 1]
        for line in lines:
            self.stamp += 1
            stamp = f"2026-12-03T01:{self.stamp // 60:02d}:{self.stamp % 60:02d}.{self.stamp:06d}Z"
            self.pods.setdefault(app_status["driverInfo"]["podName"] + app_status["submissionID"], []).append(
                f"{stamp} {line}")
        obj = {k: v for k, v in self.existing.items() if k != "status"}
        return {**obj, "status": app_status} if app_status is not None else obj

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name, **kw):
        self.deleted.append((namespace, name))
        if self.delete_error is not None:
            raise self.delete_error
        self.existing = None
        return {"kind": "Status", "status": "Success"}

    # CoreV1Api
    def read_namespaced_pod_log(self, name, namespace, **kw):
        self.log_calls.append(kw)
        if self.log_errors:
            raise self.log_errors.pop(0)
        app_status = self.steps[min(self.gets, len(self.steps)) - 1][0]
        lines = self.pods.get(name + app_status["submissionID"])
        if lines is None:
            raise api_error(404, "Not Found", f'pods "{name}" not found')
        if kw.get("tail_lines"):
            lines = lines[-kw["tail_lines"]:]
        if not kw.get("timestamps"):
            lines = [line.partition(" ")[2] for line in lines]
        return "".join(line + "\n" for line in lines)  # the whole log: the runner drops what it has seen


SPARK_START = ["Using Spark's default log4j profile: org/apache/spark/log4j2-defaults.properties",
               "26/12/03 01:02:05 INFO SparkContext: Running Spark version 4.0.0"]
SPARK_END = ["26/12/03 01:20:11 INFO SparkContext: Successfully stopped SparkContext",
             "26/12/03 01:20:11 INFO ShutdownHookManager: Shutdown hook called"]


def run(cluster: Cluster, clock: Clock | None = None, timeout_s: float = 3600, **kw):
    clock = clock or Clock()
    lines: list[str] = []
    out = sa.run_spark_application(cluster, cluster, spec().body(), NS, timeout_s=timeout_s, poll_s=10,
                                   log=lines.append, clock=clock, sleep=clock.sleep, **kw)
    return out, lines


def run_failing(cluster: Cluster, exc=sa.SparkApplicationError, **kw) -> tuple[BaseException, list[str]]:
    clock = Clock()
    lines: list[str] = []
    with pytest.raises(exc) as info:
        sa.run_spark_application(cluster, cluster, spec().body(), NS, log=lines.append, clock=clock,
                                 sleep=clock.sleep, **{"timeout_s": 3600, "poll_s": 10, **kw})
    return info.value, lines


# --- the spec ---------------------------------------------------------------------------------------------
def differences(ours, theirs, path: str = "") -> list[str]:
    """Where two manifests disagree: a value, or a key only one of them defines."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found = [f"{path}.{k}: only in {'the built body' if k in ours else 'the manifest'}"
                 for k in set(ours) ^ set(theirs)]
        return found + [d for k in set(ours) & set(theirs) for d in differences(ours[k], theirs[k], f"{path}.{k}")]
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [d for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if ours == theirs else [f"{path}: {ours!r} != {theirs!r}"]


def test_the_built_body_is_the_infra_manifest_but_for_its_name_and_arguments():
    manifest = yaml.safe_load(MANIFEST.read_text())
    body = spec().body()
    assert (body["apiVersion"], body["kind"]) == (manifest["apiVersion"], manifest["kind"])
    assert body["metadata"]["namespace"] == manifest["metadata"]["namespace"]
    ours = {k: v for k, v in body["spec"].items() if k != "arguments"}
    theirs = {k: v for k, v in manifest["spec"].items() if k != "arguments"}
    assert differences(ours, theirs) == []
    # what matters most, spelled out: the pinned image, the account with the IRSA role, the launcher
    assert body["spec"]["image"] == manifest["spec"]["image"] == image()
    assert body["spec"]["driver"]["serviceAccount"] == body["spec"]["executor"]["serviceAccount"] == "feature-job"
    assert body["spec"]["volumes"][0]["configMap"]["name"] == sa.LAUNCHER_CONFIG_MAP
    assert body["spec"]["restartPolicy"] == manifest["spec"]["restartPolicy"]
    assert body["spec"]["sparkConf"] == manifest["spec"]["sparkConf"]


def test_the_manifest_and_the_builder_ask_the_job_for_the_same_tables():
    from shoprank.features.engine.job import build_parser

    manifest = yaml.safe_load(MANIFEST.read_text())
    by_hand = [a.replace("REPLACE-END", "2026-12-03") for a in manifest["spec"]["arguments"]]
    parser = build_parser()
    ours, theirs = parser.parse_args(ARGS), parser.parse_args(by_hand)
    assert ours.engine == theirs.engine == "spark"
    assert ours.tables == theirs.tables == ",".join(sa.FEATURE_TABLES)
    assert ours.at == ["2026-11-26T00:00:00+00:00", "2026-12-03T00:00:00+00:00"] and ours.end is None
    assert ours.out == "s3a://features/features/engine/" and ours.master is None  # the operator sets the master


def test_arguments_name_every_time_and_the_tables():
    args = sa.feature_job_arguments(interactions="i", items="c", at=["2026-12-03T00:00:00+00:00"], out="o",
                                    label_days=7, knn_cap=50)
    assert args == ["--engine", "spark", "--interactions", "i", "--items", "c", "--at", "2026-12-03T00:00:00+00:00",
                    "--tables", "user_stats,item_stats,item_neighbours", "--out", "o", "--label-days", "7",
                    "--knn-cap", "50"]
    on_s3 = sa.feature_job_arguments(interactions="s3://b/i.parquet", items="s3a://b/c.parquet",
                                     at=[datetime(2026, 12, 3, tzinfo=UTC)], out="s3://b/features/engine/")
    assert on_s3[3::2][:3] == ["s3a://b/i.parquet", "s3a://b/c.parquet", "2026-12-03T00:00:00+00:00"]
    assert on_s3[-1] == "s3a://b/features/engine/"
    with pytest.raises(ValueError, match="--at"):
        sa.feature_job_arguments(interactions="i", items="c", at=[], out="o")


@pytest.mark.parametrize("run_id", ["0f6c2a4e-1b7d-4c38-9a51-2d3e8f0b9c17", "Nightly_2026.12.03 run#4",
                                    "x" * 200, "--", "7"])
def test_a_run_gets_a_valid_name_that_leaves_room_for_the_operators_services(run_id):
    name = sa.application_name(run_id)
    assert len(name) <= sa.NAME_MAX and len(f"{name}-ui-svc") <= 63
    assert sa._NAME.match(name), name
    assert sa.application_name(run_id) == name  # the same run, the same name: a retried step attaches


def test_names_of_different_long_runs_differ():
    assert sa.application_name("a" * 100 + "1") != sa.application_name("a" * 100 + "2")
    assert sa.application_name("0f6c2a4e-1b7d-4c38-9a51-2d3e8f0b9c17") == NAME


def test_the_spec_refuses_an_unpinned_image_and_a_bad_name():
    with pytest.raises(ValueError, match="digest"):
        spec(image="ghcr.io/shoprank/shoprank:0.1.0")
    with pytest.raises(ValueError, match="DNS-1035"):
        spec(name="Shoprank_Features")
    with pytest.raises(ValueError, match="DNS-1035"):
        spec(name="s" * 60)


def test_from_settings_takes_the_spark_values_and_defaults_the_rest():
    settings = SimpleNamespace(spark_namespace="jobs", spark_image=image(), spark_executor_instances="8",
                               spark_executor_memory="16g", spark_driver_cores=None)
    built = sa.SparkApplicationSpec.from_settings(settings, run_id="r-1", arguments=ARGS)
    body = built.body()
    assert body["metadata"] == {"name": "shoprank-features-r-1", "namespace": "jobs",
                                "labels": {"app.kubernetes.io/part-of": "shoprank",
                                           "app.kubernetes.io/name": "feature-job"}}
    assert body["spec"]["executor"]["instances"] == 8 and body["spec"]["executor"]["memory"] == "16g"
    assert body["spec"]["driver"]["cores"] == 1 and body["spec"]["arguments"] == ARGS
    with pytest.raises(ValueError, match="digest"):
        sa.SparkApplicationSpec.from_settings(SimpleNamespace(), run_id="r-1", arguments=ARGS)


# --- the runner ---------------------------------------------------------------------------------------------
def test_success_streams_the_driver_log_once_and_returns_the_jobs_summary():
    cluster = Cluster([
        (None, []),  # created, not yet picked up by the operator
        (status("SUBMITTED"), []),
        (status("RUNNING", executors={f"{NAME}-exec-1": "PENDING"}), SPARK_START),
        (status("RUNNING", executors={f"{NAME}-exec-1": "RUNNING", f"{NAME}-exec-2": "RUNNING"}),
         ["user_stats       2026-12-03        1,200 rows     3.1 s"]),
        (status("RUNNING"), [json.dumps(SUMMARY), *SPARK_END]),
        (status("COMPLETED", executors={f"{NAME}-exec-1": "COMPLETED"}), []),
    ])
    out, lines = run(cluster)
    assert out["rows"] == SUMMARY["rows"] and out["summary"] == SUMMARY
    assert (out["state"], out["driver_pod"], out["attempts"], out["application"]) == ("COMPLETED", POD, 1, NAME)
    assert cluster.created == [spec().body()] and cluster.deleted == []
    driver = [line for line in lines if line.startswith("driver | ")]
    assert driver == [f"driver | {line}" for line in
                      [*SPARK_START, "user_stats       2026-12-03        1,200 rows     3.1 s", json.dumps(SUMMARY),
                       *SPARK_END]]
    assert any("RUNNING" in line for line in lines) and any("2 RUNNING" in line for line in lines)
    # the first read of the pod takes its whole log; every later one the last poll's worth (and then some)
    windows = [c.get("since_seconds") for c in cluster.log_calls]
    assert windows[:2] == [None, None] and len(windows) == 5  # SUBMITTED: no pod yet (404)
    assert all(0 < w <= 10 + sa.SINCE_MARGIN_S for w in windows[2:])
    assert all(c["container"] == sa.DRIVER_CONTAINER and c["timestamps"] for c in cluster.log_calls)


def test_completed_without_a_summary_line_is_an_error():
    cluster = Cluster([(status("RUNNING"), SPARK_START), (status("COMPLETED"), SPARK_END)])
    err, _ = run_failing(cluster)
    assert "no summary line" in str(err) and cluster.deleted == []


def test_failure_names_the_application_its_error_and_the_log_tail():
    log = [f"26/12/03 01:05:{i:02d} INFO DAGScheduler: step {i}" for i in range(60)]
    error = "driver container failed with ExitCode: 1, Reason: Error"
    cluster = Cluster([(status("RUNNING"), log[:30]),
                       (status("RUNNING"), [*log[30:], "pyspark.errors.exceptions.AnalysisException: boom"]),
                       (status("FAILED", attempts=3, error=error), [])])
    err, _ = run_failing(cluster, sa.SparkApplicationFailed)
    text = str(err)
    assert NAME in text and "FAILED" in text and error in text and "after 3 attempt(s)" in text
    assert "AnalysisException: boom" in text and log[-1] in text
    assert log[10] not in text  # only the tail: the last 50 lines
    assert len(err.log_tail) == 50 and err.state == "FAILED" and err.error_message == error
    assert cluster.deleted == []  # a failed application stays for a look (the operator's TTL removes it)


def test_submission_failure_is_final_when_no_retry_is_left():
    error = "failed to run spark-submit: Exception in thread main: configmap feature-job-launcher not found"
    cluster = Cluster([(None, []), (status("SUBMISSION_FAILED", submissions=3, attempts=0, error=error), [])])
    err, _ = run_failing(cluster, sa.SparkApplicationFailed)
    assert error in str(err) and "SUBMISSION_FAILED" in str(err) and "no driver log" in str(err)


def test_a_submission_failure_the_operator_retries_is_waited_out():
    cluster = Cluster([(status("SUBMISSION_FAILED", submissions=1, attempts=0, error="webhook timeout"), []),
                       (status("SUBMITTED", submissions=2, submission_id="b"), []),
                       (status("RUNNING", submissions=2, submission_id="b"), [json.dumps(SUMMARY)]),
                       (status("COMPLETED", submissions=2, submission_id="b"), [])])
    out, _ = run(cluster)
    assert out["submission_attempts"] == 2 and out["rows"] == SUMMARY["rows"]


def test_a_rerun_streams_the_new_driver_pod_from_its_start():
    cluster = Cluster([(status("RUNNING", submission_id="a"), ["attempt one starts", "same text"]),
                       (status("FAILING", submission_id="a"), ["attempt one dies"]),
                       (status("PENDING_RERUN", submission_id="a"), []),
                       (status("RUNNING", attempts=2, submission_id="b"), ["attempt two starts", "same text"]),
                       (status("COMPLETED", attempts=2, submission_id="b"), [json.dumps(SUMMARY)])])
    out, lines = run(cluster)
    driver = [line.removeprefix("driver | ") for line in lines if line.startswith("driver | ")]
    assert driver == ["attempt one starts", "same text", "attempt one dies", "attempt two starts", "same text",
                      json.dumps(SUMMARY)]
    assert out["attempts"] == 2


def test_a_timeout_deletes_the_application():
    clock = Clock()
    cluster = Cluster([(status("RUNNING"), ["working"])])
    lines: list[str] = []
    with pytest.raises(sa.SparkApplicationTimeout) as info:
        sa.run_spark_application(cluster, cluster, spec().body(), NS, timeout_s=60, poll_s=10, log=lines.append,
                                 clock=clock, sleep=clock.sleep)
    assert cluster.deleted == [(NS, NAME)]
    assert "within 60 s" in str(info.value) and "RUNNING" in str(info.value) and "it was deleted" in str(info.value)
    assert clock.t == 60 and max(clock.sleeps) <= 10


def test_a_timeout_says_how_to_delete_by_hand_when_deleting_fails():
    cluster = Cluster([(status("RUNNING"), [])], delete_error=forbidden("delete", "sparkapplications",
                                                                         "sparkoperator.k8s.io"))
    err, _ = run_failing(cluster, sa.SparkApplicationTimeout, timeout_s=20)
    assert f"kubectl -n {NS} delete sparkapplication {NAME}" in str(err)


def test_an_existing_application_of_the_same_run_is_attached_to():
    cluster = Cluster([(status("RUNNING"), ["half way"]), (status("COMPLETED"), [json.dumps(SUMMARY)])])
    cluster.existing = {**spec().body(), "status": status("RUNNING")}
    out, lines = run(cluster)
    assert cluster.created == [] and out["rows"] == SUMMARY["rows"]
    assert any("exists already (RUNNING)" in line for line in lines)


def test_an_existing_failed_application_of_the_same_run_is_submitted_again():
    cluster = Cluster([(status("RUNNING"), []), (status("COMPLETED"), [json.dumps(SUMMARY)])])
    cluster.existing = spec().body()
    cluster.steps.insert(0, (status("FAILED", attempts=3, error="driver container failed"), []))
    out, _ = run(cluster)
    assert cluster.deleted == [(NS, NAME)] and cluster.created == [spec().body()]
    assert out["rows"] == SUMMARY["rows"]


def test_an_existing_application_with_other_arguments_is_left_alone():
    cluster = Cluster([(status("RUNNING"), [])])
    cluster.existing = {**spec().body(), "spec": {**spec().body()["spec"], "arguments": ["--engine", "spark"]}}
    err, _ = run_failing(cluster)
    assert "exists already with other arguments" in str(err) and cluster.deleted == []


def test_a_driver_pod_that_does_not_exist_or_run_yet_is_waited_for():
    cluster = Cluster([(status("SUBMITTED"), []), (status("SUBMITTED"), []), (status("RUNNING"), ["up"]),
                       (status("COMPLETED"), [json.dumps(SUMMARY)])],
                      log_errors=[api_error(404, "Not Found", f'pods "{POD}" not found'),
                                  api_error(400, "Bad Request", f'container "spark-kubernetes-driver" in pod "{POD}" '
                                                                "is waiting to start: ContainerCreating")])
    out, lines = run(cluster)
    assert out["rows"] == SUMMARY["rows"]
    assert any("not found" in line for line in lines) and any("ContainerCreating" in line for line in lines)
    driver = [line for line in lines if line.startswith("driver | ")]
    assert driver == ["driver | up", f"driver | {json.dumps(SUMMARY)}"]


def test_transient_api_errors_are_retried():
    cluster = Cluster([(status("RUNNING"), []), (status("COMPLETED"), [json.dumps(SUMMARY)])],
                      get_errors={1: api_error(503, "Service Unavailable", "etcdserver: leader changed"),
                                  2: api_error(429, "Too Many Requests", "slow down")})
    out, _ = run(cluster)
    assert out["rows"] == SUMMARY["rows"]


def test_a_missing_create_permission_names_the_rbac_rule():
    cluster = Cluster([], create_error=forbidden("create", "sparkapplications", "sparkoperator.k8s.io"))
    err, _ = run_failing(cluster, sa.SparkApplicationForbidden)
    text = str(err)
    assert "'create'" in text and "'sparkapplications'" in text and "'sparkoperator.k8s.io'" in text
    assert f"namespace '{NS}'" in text and sa.RBAC_MANIFEST in text and "pipeline-runner" in text
    assert cluster.deleted == []  # nothing was created


def test_a_missing_log_permission_names_it_and_stops_the_application():
    cluster = Cluster([(status("RUNNING"), ["x"])], log_errors=[forbidden("get", "pods/log")])
    err, _ = run_failing(cluster, sa.SparkApplicationForbidden)
    assert "'get'" in str(err) and "'pods/log'" in str(err) and "it was deleted" in str(err)
    assert cluster.deleted == [(NS, NAME)]


def test_an_interrupt_deletes_the_application():
    cluster = Cluster([(status("RUNNING"), [])], get_errors={3: KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        run(cluster)
    assert cluster.deleted == [(NS, NAME)]


def test_sigterm_deletes_the_application_and_restores_the_handler():
    before = signal.getsignal(signal.SIGTERM)

    class Terminating(Cluster):
        def get_namespaced_custom_object(self, *a, **kw):
            got = super().get_namespaced_custom_object(*a, **kw)
            if self.gets == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return got

    cluster = Terminating([(status("RUNNING"), [])])
    with pytest.raises(sa.StepTerminated):
        run(cluster)
    assert cluster.deleted == [(NS, NAME)]
    assert signal.getsignal(signal.SIGTERM) == before


def test_an_application_deleted_by_someone_else_is_an_error():
    cluster = Cluster([(status("RUNNING"), [])],
                      get_errors={2: api_error(404, "Not Found", f'sparkapplications "{NAME}" not found')})
    err, _ = run_failing(cluster)
    assert "disappeared" in str(err)


def test_submit_feature_job_reads_the_settings():
    cluster = Cluster([(status("COMPLETED"), [json.dumps(SUMMARY)])])
    settings = SimpleNamespace(spark_image=image(), spark_timeout_s=100.0, spark_poll_s=0.001)
    out = sa.submit_feature_job(settings, run_id="0f6c2a4e-1b7d-4c38-9a51-2d3e8f0b9c17", arguments=ARGS,
                                log=lambda line: None, apis=(cluster, cluster))
    assert out["application"] == NAME and cluster.created[0]["metadata"]["namespace"] == "shoprank"


def test_kubernetes_apis_falls_back_to_the_kube_config(monkeypatch):
    from kubernetes import client, config

    calls = []

    def not_in_a_pod():
        calls.append("incluster")
        raise config.ConfigException("Service host/port is not set.")

    monkeypatch.setattr(config, "load_incluster_config", not_in_a_pod)
    monkeypatch.setattr(config, "load_kube_config", lambda: calls.append("kubeconfig"))
    api, core = sa.kubernetes_apis()
    assert calls == ["incluster", "kubeconfig"]
    assert isinstance(api, client.CustomObjectsApi) and isinstance(core, client.CoreV1Api)

    def no_config():
        raise config.ConfigException("Invalid kube-config file. No configuration found.")

    monkeypatch.setattr(config, "load_kube_config", no_config)
    with pytest.raises(sa.SparkApplicationError, match="no Kubernetes configuration"):
        sa.kubernetes_apis()
