"""The feature job on the cluster: one SparkApplication per run, created, watched and cleaned up.

The nightly's features step runs the feature job (`job.py`) on Spark through the Kubeflow Spark
operator: it creates a `SparkApplication` (`sparkoperator.k8s.io/v1beta2`) whose spec is the one of
`infra/k8s/jobs/feature-job/sparkapplication.yaml` (a test holds the two together), with the run's
own name and the job's arguments, then polls its status until the operator says it is done:

- COMPLETED: the outcome (driver pod, attempts, the job's JSON summary, read from the driver's log);
- FAILED, or SUBMISSION_FAILED with no submission retry left: `SparkApplicationFailed`, naming the
  application, its state, the operator's error message and the driver log's last lines;
- the deadline passes, the step is interrupted (Ctrl-C, SIGTERM from a cancelled KFP run) or the
  runner itself fails while the application is still going: the application is deleted (the operator
  then deletes its driver, the driver's executors go with it), so nothing keeps running unattended.

While it runs, the driver's new log lines are streamed to `log`. An application of the same name
that already exists is a retried step: the runner attaches to it (or, if it had failed, deletes it
and submits again). The API objects are parameters (tests pass fakes that answer with the shapes the
real API returns); `kubernetes_apis()` builds the real ones. `kubernetes` is imported there only.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GROUP = "sparkoperator.k8s.io"
VERSION = "v1beta2"
PLURAL = "sparkapplications"
KIND = "SparkApplication"
DRIVER_CONTAINER = "spark-kubernetes-driver"  # Spark's name for the driver pod's container

# What the runner calls, as RBAC names it: (API group, resource, verb). The Role the KFP steps' service
# account is bound to (infra/k8s/base/feature-job/submitter.yaml) grants exactly these.
PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    (GROUP, PLURAL, "create"),
    (GROUP, PLURAL, "get"),
    (GROUP, PLURAL, "delete"),
    ("", "pods/log", "get"),
)
RBAC_MANIFEST = "infra/k8s/base/feature-job/submitter.yaml"

# The spec of infra/k8s/jobs/feature-job/sparkapplication.yaml (tests/features/test_spark_application.py
# compares the two field by field).
SPARK_VERSION = "4.0.0"
LAUNCHER_CONFIG_MAP = "feature-job-launcher"  # run.py, kept on the cluster by infra/k8s/base
LAUNCHER_DIR = "/etc/shoprank-feature-job"
APP_LABELS = {"app.kubernetes.io/name": "feature-job"}  # what the feature-job NetworkPolicy selects
NODE_SELECTOR = {"shoprank.io/pool": "cpu"}
SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "64",
    # s3a with the pod's IRSA web identity (the image carries hadoop-aws matching Spark's Hadoop)
    "spark.hadoop.fs.s3a.aws.credentials.provider":
        "software.amazon.awssdk.auth.credentials.WebIdentityTokenFileCredentialsProvider",
}
RESTART_POLICY = {
    "type": "OnFailure",
    "onFailureRetries": 2,
    "onFailureRetryInterval": 60,
    "onSubmissionFailureRetries": 2,
    "onSubmissionFailureRetryInterval": 30,
}
TIME_TO_LIVE_S = 86400  # the operator deletes a finished application (and its driver pod) a day later

# The tables the nightly computes (job.py's --tables), in the order it writes them.
FEATURE_TABLES = ("user_stats", "item_stats", "item_neighbours")

# A name is a DNS-1035 label (the operator names Services after it) and leaves room for the
# operator's "-ui-svc" suffix within the 63 characters a Service name may have.
NAME_MAX = 56
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

COMPLETED = "COMPLETED"
FAILED = "FAILED"
SUBMISSION_FAILED = "SUBMISSION_FAILED"
NEW = "NEW"  # no state yet: the operator has not picked the application up

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_TRANSIENT = 5  # consecutive transient API errors tolerated while polling
REQUEST_TIMEOUT_S = 60  # per API call, so a hung connection cannot outlive the deadline by much
SINCE_MARGIN_S = 5  # overlap between two log reads (lines seen twice are dropped)
LOG_LINES_KEPT = 500  # the driver log's tail kept in memory: the summary line and the failure tail


class SparkApplicationError(RuntimeError):
    """The application could not be run or watched."""


class SparkApplicationFailed(SparkApplicationError):
    """The operator reports the application failed."""

    def __init__(self, message: str, *, name: str, state: str, error_message: str, log_tail: list[str]):
        super().__init__(message)
        self.name, self.state, self.error_message, self.log_tail = name, state, error_message, log_tail


class SparkApplicationTimeout(SparkApplicationError):
    """The application did not finish before the deadline (it was deleted)."""


class SparkApplicationForbidden(SparkApplicationError):
    """The Kubernetes API refused a call: the step's service account lacks an RBAC permission."""


class StepTerminated(BaseException):
    """SIGTERM arrived while watching (a cancelled or timed-out KFP run): delete, then stop."""


# --- the application's spec ---------------------------------------------------------------------------
def application_name(run_id: str, prefix: str = "shoprank-features") -> str:
    """A unique, valid SparkApplication name per run: `<prefix>-<run id>`, lower-cased, invalid
    characters as dashes, and shortened with a hash of the whole when longer than NAME_MAX."""
    raw = f"{prefix}-{run_id}"
    name = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", raw.lower())).strip("-")
    if not name or not name[0].isalpha():
        name = f"x-{name}".rstrip("-")
    if len(name) > NAME_MAX:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = f"{name[:NAME_MAX - 9].rstrip('-')}-{digest}"
    if not _NAME.match(name):  # pragma: no cover - the rules above always give a valid name
        raise ValueError(f"cannot make a SparkApplication name of {raw!r}")
    return name


def feature_job_arguments(*, interactions: str, items: str, at: Iterable[str | datetime], out: str,
                          tables: Sequence[str] = FEATURE_TABLES, label_days: int | None = None,
                          knn_cap: int | None = None) -> list[str]:
    """The job's command line (`python -m shoprank.features.engine.job`) for the given snapshot times.
    The store's `s3://` URLs become `s3a://`, the scheme of Spark's S3 connector."""
    interactions, items, out = (_s3a(u) for u in (interactions, items, out))
    times = [t.isoformat() if isinstance(t, datetime) else str(t) for t in at]
    if not times:
        raise ValueError("the feature job needs at least one snapshot time (--at)")
    args = ["--engine", "spark", "--interactions", interactions, "--items", items]
    for t in times:
        args += ["--at", t]
    args += ["--tables", ",".join(tables), "--out", out]
    if label_days is not None:
        args += ["--label-days", str(label_days)]
    if knn_cap is not None:
        args += ["--knn-cap", str(knn_cap)]
    return args


def _s3a(url: str) -> str:
    return "s3a://" + url.removeprefix("s3://") if url.startswith("s3://") else url


@dataclass(frozen=True)
class SparkApplicationSpec:
    """One run of the feature job as a SparkApplication; `body()` is what the API is sent."""

    name: str
    namespace: str
    image: str
    arguments: Sequence[str]
    service_account: str = "feature-job"
    driver_cores: int = 1
    driver_memory: str = "4g"
    executor_instances: int = 4
    executor_cores: int = 2
    executor_memory: str = "8g"
    labels: Mapping[str, str] = field(default_factory=dict)  # on the SparkApplication object only

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or len(self.name) > NAME_MAX:
            raise ValueError(f"SparkApplication name {self.name!r}: a DNS-1035 label of at most {NAME_MAX} "
                             "characters is needed (see application_name)")
        if not self.image or "@sha256:" not in self.image:
            raise ValueError(f"the feature job's image must be pinned by digest (name:tag@sha256:...), "
                             f"got {self.image!r}")
        if not self.namespace:
            raise ValueError("the SparkApplication needs a namespace")

    @classmethod
    def from_settings(cls, settings: Any, *, run_id: str, arguments: Sequence[str]) -> SparkApplicationSpec:
        """From the settings' `spark_*` values (the defaults above where a setting is absent)."""
        def value(name: str, default: Any) -> Any:
            got = getattr(settings, name, None)
            return default if got in (None, "") else got

        return cls(
            name=application_name(run_id),
            namespace=value("spark_namespace", "shoprank"),
            image=value("spark_image", ""),
            arguments=tuple(arguments),
            service_account=value("spark_service_account", cls.service_account),
            driver_cores=int(value("spark_driver_cores", cls.driver_cores)),
            driver_memory=str(value("spark_driver_memory", cls.driver_memory)),
            executor_instances=int(value("spark_executor_instances", cls.executor_instances)),
            executor_cores=int(value("spark_executor_cores", cls.executor_cores)),
            executor_memory=str(value("spark_executor_memory", cls.executor_memory)),
            labels={"app.kubernetes.io/part-of": "shoprank", **APP_LABELS},
        )

    def body(self) -> dict[str, Any]:
        def pod(cores: int, memory: str) -> dict[str, Any]:
            return {"cores": cores, "memory": memory, "serviceAccount": self.service_account,
                    "labels": dict(APP_LABELS), "nodeSelector": dict(NODE_SELECTOR)}

        driver = {**pod(self.driver_cores, self.driver_memory),
                  "volumeMounts": [{"name": "launcher", "mountPath": LAUNCHER_DIR}]}
        executor = {"instances": self.executor_instances, **pod(self.executor_cores, self.executor_memory)}
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.labels:
            metadata["labels"] = dict(self.labels)
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": metadata,
            "spec": {
                "type": "Python",
                "pythonVersion": "3",
                "mode": "cluster",
                "image": self.image,
                "imagePullPolicy": "IfNotPresent",
                "sparkVersion": SPARK_VERSION,
                "mainApplicationFile": f"local://{LAUNCHER_DIR}/run.py",
                "arguments": list(self.arguments),
                "sparkConf": dict(SPARK_CONF),
                "restartPolicy": dict(RESTART_POLICY),
                "timeToLiveSeconds": TIME_TO_LIVE_S,
                "volumes": [{"name": "launcher", "configMap": {"name": LAUNCHER_CONFIG_MAP}}],
                "driver": driver,
                "executor": executor,
            },
        }


# --- the Kubernetes API ---------------------------------------------------------------------------------
def kubernetes_apis() -> tuple[Any, Any]:
    """(CustomObjectsApi, CoreV1Api) of the cluster this runs in (its service account), else of the
    current kube config context (a laptop pointed at the cluster)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, FileNotFoundError) as err:
            raise SparkApplicationError(
                "no Kubernetes configuration: not in a pod with a service account, and no kube config "
                f"({err})") from err
    return client.CustomObjectsApi(), client.CoreV1Api()


def _api_status(exc: BaseException) -> int | None:
    """The HTTP status of a kubernetes ApiException (duck-typed: this module never imports it)."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def _api_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError, TypeError):
            message = None
        if message:
            return str(message)
    return str(getattr(exc, "reason", None) or exc).strip()


def _transient(exc: BaseException) -> bool:
    return _api_status(exc) in TRANSIENT_STATUS or isinstance(exc, (OSError, TimeoutError)) \
        or type(exc).__module__.startswith("urllib3")


def _forbidden(exc: BaseException, group: str, resource: str, verb: str, namespace: str,
               ) -> SparkApplicationForbidden:
    where = f"{resource}.{group}" if group else resource
    return SparkApplicationForbidden(
        f"the Kubernetes API refused to {verb} {where} in namespace {namespace!r}: the service account "
        f"this step runs as needs a Role granting verb {verb!r} on resource {resource!r} (apiGroup "
        f"{group!r}) there, bound to it ({RBAC_MANIFEST} binds one to kubeflow/pipeline-runner). "
        f"The API said: {_api_message(exc)}")


def _delete(api: Any, namespace: str, name: str) -> tuple[bool, str]:
    """Delete the application: (whether it is gone or going, what happened as a phrase for a message)."""
    try:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                            propagation_policy="Background",
                                            _request_timeout=REQUEST_TIMEOUT_S)
    except Exception as err:  # noqa: BLE001 - reported; the error that led here is the one raised
        if _api_status(err) == 404:
            return True, "it is gone already"
        return False, (f"deleting it failed ({_api_message(err)}): delete it by hand, "
                       f"kubectl -n {namespace} delete sparkapplication {name}")
    return True, "it was deleted"


# --- the state the operator reports -----------------------------------------------------------------------
@dataclass(frozen=True)
class _Status:
    state: str
    error_message: str
    driver_pod: str
    execution_attempts: int
    submission_attempts: int
    submission_id: str
    app_id: str
    executors: dict[str, int]

    @classmethod
    def of(cls, app: Mapping[str, Any]) -> _Status:
        status = app.get("status") or {}
        app_state = status.get("applicationState") or {}
        executors = Counter(str(s) for s in (status.get("executorState") or {}).values())
        return cls(state=str(app_state.get("state") or NEW), error_message=str(app_state.get("errorMessage") or ""),
                   driver_pod=str((status.get("driverInfo") or {}).get("podName") or ""),
                   execution_attempts=int(status.get("executionAttempts") or 0),
                   submission_attempts=int(status.get("submissionAttempts") or 0),
                   submission_id=str(status.get("submissionID") or ""),
                   app_id=str(status.get("sparkApplicationId") or ""), executors=dict(sorted(executors.items())))


def _will_resubmit(app: Mapping[str, Any], status: _Status) -> bool:
    """Whether the operator retries a SUBMISSION_FAILED application (its own rule: OnFailure with
    submission attempts left, or Always)."""
    policy = (app.get("spec") or {}).get("restartPolicy") or {}
    if policy.get("type") == "Always":
        return True
    retries = policy.get("onSubmissionFailureRetries")
    return policy.get("type") == "OnFailure" and retries is not None and status.submission_attempts <= int(retries)


def _failed(app: Mapping[str, Any], status: _Status) -> bool:
    return status.state == FAILED or (status.state == SUBMISSION_FAILED and not _will_resubmit(app, status))


# --- the driver's log ---------------------------------------------------------------------------------------
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def _instant(stamp: str) -> tuple[int, int] | None:
    """(epoch second, nanosecond) of the RFC 3339 timestamp the kubelet puts before each line."""
    match = _TIMESTAMP.match(stamp)
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone)).astimezone(UTC)
    return int(moment.timestamp()), int((fraction or "0").ljust(9, "0"))


class _DriverLog:
    """The driver pod's new lines at each poll: a window of `since_seconds` reaching back past the last
    read, with the kubelet's timestamps to drop what was already seen. One pod incarnation at a time:
    a rerun recreates the driver pod under the same name, and `reset` starts over."""

    def __init__(self, core_api: Any, namespace: str, log: Callable[[str], None], clock: Callable[[], float]):
        self.core_api, self.namespace, self.log, self.clock = core_api, namespace, log, clock
        self.tail: deque[str] = deque(maxlen=LOG_LINES_KEPT)
        self.waiting = ""
        self.reset()

    def reset(self) -> None:
        self.last_read: float | None = None
        self.last_instant: tuple[int, int] | None = None
        self.at_last_instant: set[str] = set()

    def poll(self, pod: str) -> None:
        began = self.clock()
        kwargs: dict[str, Any] = {"container": DRIVER_CONTAINER, "timestamps": True,
                                  "_request_timeout": REQUEST_TIMEOUT_S}
        if self.last_read is not None:
            kwargs["since_seconds"] = max(1, math.ceil(began - self.last_read) + SINCE_MARGIN_S)
        try:
            text = self.core_api.read_namespaced_pod_log(pod, self.namespace, **kwargs)
        except Exception as err:
            status = _api_status(err)
            if status == 403:
                raise _forbidden(err, "", "pods/log", "get", self.namespace) from err
            if status in (400, 404):  # no pod yet, or its container has not started: waiting
                message = _api_message(err)
                if message != self.waiting:
                    self.waiting = message
                    self.log(f"driver {pod}: not started yet ({message})")
                return
            if _transient(err):
                self.log(f"driver {pod}: reading its log failed for now ({_api_message(err)}); retrying")
                return
            raise
        self.waiting = ""
        self.last_read = began
        for raw in (text or "").splitlines():
            self._line(raw)

    def _line(self, raw: str) -> None:
        stamp, _, line = raw.partition(" ")
        instant = _instant(stamp)
        if instant is None:  # no timestamp: take it as it is
            line = raw
        elif self.last_instant is not None and (
                instant < self.last_instant or (instant == self.last_instant and raw in self.at_last_instant)):
            return  # read before, in the window's overlap
        elif instant == self.last_instant:
            self.at_last_instant.add(raw)
        else:
            self.last_instant, self.at_last_instant = instant, {raw}
        self.tail.append(line)
        self.log(f"driver | {line}")

    def summary(self) -> dict[str, Any] | None:
        """The job's JSON line (`{"engine": ..., "rows": {...}, ...}`): the last log line that is one.
        Not necessarily the very last line: Spark logs its shutdown after the job has printed it."""
        for line in reversed(self.tail):
            text = line.strip()
            if text.startswith("{") and text.endswith("}"):
                try:
                    parsed = json.loads(text)
                except ValueError:
                    continue
                if isinstance(parsed, dict) and "rows" in parsed:
                    return parsed
        return None


# --- running it ---------------------------------------------------------------------------------------------
class _Watch:
    def __init__(self, api: Any, namespace: str, name: str, log: Callable[[str], None]):
        self.api, self.namespace, self.name, self.log = api, namespace, name, log
        self.transient = 0

    def get(self) -> dict[str, Any] | None:
        """The application, None for a transient error (tolerated MAX_TRANSIENT times in a row)."""
        try:
            app = self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name,
                                                        _request_timeout=REQUEST_TIMEOUT_S)
        except Exception as err:
            status = _api_status(err)
            if status == 403:
                raise _forbidden(err, GROUP, PLURAL, "get", self.namespace) from err
            if status == 404:
                raise SparkApplicationError(
                    f"SparkApplication {self.namespace}/{self.name} disappeared while it was watched "
                    "(deleted by someone else?)") from err
            if _transient(err) and self.transient < MAX_TRANSIENT:
                self.transient += 1
                self.log(f"{self.name}: asking for its status failed ({_api_message(err)}); retrying")
                return None
            raise
        self.transient = 0
        return app


def _create(api: Any, body: Mapping[str, Any], namespace: str, log: Callable[[str], None],
            clock: Callable[[], float], sleep: Callable[[float], None], deadline: float, poll_s: float) -> None:
    """Create the application, or attach to the one a previous try of this step created (same name, same
    arguments). A previous try's application that failed is deleted and submitted again."""
    name = body["metadata"]["name"]
    while True:
        try:
            api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body,
                                                _request_timeout=REQUEST_TIMEOUT_S)
            log(f"{name}: created SparkApplication in namespace {namespace}")
            return
        except Exception as err:
            status = _api_status(err)
            if status == 403:
                raise _forbidden(err, GROUP, PLURAL, "create", namespace) from err
            if status != 409:
                raise
        try:
            existing = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                        _request_timeout=REQUEST_TIMEOUT_S)
        except Exception as err:
            status = _api_status(err)
            if status == 403:
                raise _forbidden(err, GROUP, PLURAL, "get", namespace) from err
            if status != 404:  # 404: deleted between the two calls; create it again
                raise
            continue
        if (existing.get("metadata") or {}).get("deletionTimestamp"):  # a failed try's, going away
            if clock() >= deadline:
                raise SparkApplicationTimeout(f"SparkApplication {namespace}/{name} of a previous try is still "
                                              "being deleted; cannot submit this one")
            sleep(poll_s)
            continue
        theirs = (existing.get("spec") or {}).get("arguments")
        if theirs != list(body["spec"]["arguments"]):
            raise SparkApplicationError(
                f"SparkApplication {namespace}/{name} exists already with other arguments ({theirs}); "
                f"this run asks for {list(body['spec']['arguments'])}. A name is meant for one run only.")
        status_ = _Status.of(existing)
        if not _failed(existing, status_):
            log(f"{name}: exists already ({status_.state}): a retried step; watching that one")
            return
        log(f"{name}: a previous try ended {status_.state} ({status_.error_message or 'no message'}); "
            "deleting it and submitting again")
        gone, what = _delete(api, namespace, name)
        if not gone:
            raise SparkApplicationError(f"SparkApplication {namespace}/{name} of a failed previous try: {what}")


def _on_sigterm() -> Callable[[], None]:
    """Make SIGTERM raise StepTerminated here (main thread only); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: Any) -> None:
        raise StepTerminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    # None: a handler not set from Python; the default is the closest there is to put back
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def run_spark_application(api: Any, core_api: Any, body: Mapping[str, Any], namespace: str, timeout_s: float,
                          poll_s: float, log: Callable[[str], None] = print, *,
                          clock: Callable[[], float] = time.monotonic,
                          sleep: Callable[[float], None] = time.sleep, tail_lines: int = 50) -> dict[str, Any]:
    """Create the SparkApplication `body` in `namespace` (a CustomObjectsApi `api`), wait for the operator
    to finish it, streaming the driver's log (a CoreV1Api `core_api`) to `log`, and return the outcome:
    `{"application", "namespace", "state", "driver_pod", "attempts", "submission_attempts",
    "spark_application_id", "executors", "seconds", "summary", "rows"}` where `summary` is the job's JSON
    line and `rows` its rows per table. Raises SparkApplicationFailed, SparkApplicationTimeout (the
    application deleted), SparkApplicationForbidden (RBAC) or SparkApplicationError."""
    name = str(body["metadata"]["name"])
    began = clock()
    deadline = began + timeout_s
    restore = _on_sigterm()
    watching = finished = False
    try:
        _create(api, body, namespace, log, clock, sleep, deadline, poll_s)
        watching = True
        watch = _Watch(api, namespace, name, log)
        driver = _DriverLog(core_api, namespace, log, clock)
        seen: tuple[str, str, int] | None = None
        incarnation: tuple[str, int] | None = None
        executors: dict[str, int] = {}
        while True:
            app = watch.get()
            if app is not None:
                status = _Status.of(app)
                if (status.state, status.driver_pod, status.execution_attempts) != seen:
                    seen = (status.state, status.driver_pod, status.execution_attempts)
                    log(f"{name}: {status.state} (attempt {status.execution_attempts}, "
                        f"submissions {status.submission_attempts})"
                        + (f": {status.error_message}" if status.error_message else ""))
                if status.executors and status.executors != executors:
                    executors = status.executors
                    log(f"{name}: executors " + ", ".join(f"{n} {s}" for s, n in executors.items()))
                if status.driver_pod:
                    if (status.submission_id, status.execution_attempts) != incarnation:
                        incarnation = (status.submission_id, status.execution_attempts)
                        driver.reset()  # a rerun: a new driver pod under the same name
                    driver.poll(status.driver_pod)
                if status.state == COMPLETED:
                    finished = True
                    return _outcome(name, namespace, status, driver, clock() - began)
                if _failed(app, status):
                    finished = True
                    raise _failure(name, namespace, status, driver, core_api, tail_lines)
            if clock() >= deadline:
                raise SparkApplicationTimeout(
                    f"SparkApplication {namespace}/{name} did not finish within {timeout_s:g} s "
                    f"(last state {seen[0] if seen else NEW})")
            sleep(max(0.0, min(poll_s, deadline - clock())))
    except BaseException as err:
        if watching and not finished:  # it may still run: nothing is to run unattended
            _, what = _delete(api, namespace, name)
            log(f"{name}: stopped watching ({type(err).__name__}: {err}); {what}")
            if isinstance(err, SparkApplicationError) and err.args:
                err.args = (f"{err.args[0]}; {what}", *err.args[1:])
        raise
    finally:
        restore()


def _outcome(name: str, namespace: str, status: _Status, driver: _DriverLog, seconds: float) -> dict[str, Any]:
    summary = driver.summary()
    if summary is None:
        raise SparkApplicationError(
            f"SparkApplication {namespace}/{name} COMPLETED, but its driver log ({status.driver_pod}) has no "
            "summary line (the job prints one JSON line with its rows as it ends)")
    return {"application": name, "namespace": namespace, "state": status.state, "driver_pod": status.driver_pod,
            "attempts": status.execution_attempts, "submission_attempts": status.submission_attempts,
            "spark_application_id": status.app_id, "executors": status.executors, "seconds": round(seconds, 1),
            "summary": summary, "rows": summary.get("rows", {})}


def _failure(name: str, namespace: str, status: _Status, driver: _DriverLog, core_api: Any,
             tail_lines: int) -> SparkApplicationFailed:
    tail = list(driver.tail)[-tail_lines:]
    if not tail and status.driver_pod:  # never streamed (attached to a finished one): ask for the tail
        try:
            text = core_api.read_namespaced_pod_log(status.driver_pod, namespace, container=DRIVER_CONTAINER,
                                                    tail_lines=tail_lines, _request_timeout=REQUEST_TIMEOUT_S)
            tail = (text or "").splitlines()[-tail_lines:]
        except Exception:  # noqa: BLE001 - the failure is what is reported; no log is said so below
            tail = []
    shown = "\n".join(tail) if tail else "(no driver log: the driver pod never started, or is gone)"
    message = (f"SparkApplication {namespace}/{name} ended {status.state} after {status.execution_attempts} "
               f"attempt(s) ({status.submission_attempts} submission(s)): "
               f"{status.error_message or 'the operator gave no error message'}\n"
               f"--- the last {len(tail)} lines of the driver log ({status.driver_pod or 'no driver pod'}) ---\n"
               f"{shown}")
    return SparkApplicationFailed(message, name=name, state=status.state, error_message=status.error_message,
                                  log_tail=tail)


def submit_feature_job(settings: Any, *, run_id: str, arguments: Sequence[str],
                       log: Callable[[str], None] = print, apis: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """The features step's call: the run's SparkApplication from the settings (`spark_*`), run to its end
    on the cluster this runs in. `apis` (CustomObjectsApi, CoreV1Api) for tests; else kubernetes_apis()."""
    spec = SparkApplicationSpec.from_settings(settings, run_id=run_id, arguments=arguments)
    api, core_api = apis if apis is not None else kubernetes_apis()
    return run_spark_application(api, core_api, spec.body(), spec.namespace,
                                 timeout_s=float(getattr(settings, "spark_timeout_s", 0) or 4 * 3600),
                                 poll_s=float(getattr(settings, "spark_poll_s", 0) or 15.0), log=log)
