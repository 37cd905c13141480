"""The committed pipelines/nightly.yaml is what the code compiles to (the KFP UI uploads it)."""

import yaml

from pipelines.nightly import COMPILED, compile_pipeline


def pipeline_spec() -> dict:
    """The pipeline spec: the first YAML document (the second is the Kubernetes platform spec)."""
    return next(yaml.safe_load_all(COMPILED.read_text()))


def test_compiled_yaml_is_up_to_date(tmp_path):
    fresh = compile_pipeline(tmp_path / "nightly.yaml")
    assert list(yaml.safe_load_all(fresh.read_text())) == list(yaml.safe_load_all(COMPILED.read_text())), (
        "pipelines/nightly.yaml is stale: run `make compile` and commit it")


def test_pipeline_starts_from_the_crossing_and_has_a_blessing_gate():
    spec = pipeline_spec()
    tasks = spec["root"]["dag"]["tasks"]
    assert {"receive", "snapshots", "neighbours", "materialise", "training-set", "train", "evaluate"} <= set(tasks)
    assert tasks["receive"]["inputs"]["parameters"]["crossing_key"] == {"componentInputParameter": "crossing_key"}
    assert set(tasks["materialise"]["dependentTasks"]) == {"receive", "snapshots", "neighbours"}
    blessed = tasks["condition-1"]
    assert blessed["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--evaluate-Output'] == 'blessed'")
    inner = spec["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(inner) == {"infra-validate", "push"}
    train_resources = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert train_resources["accelerator"]["resourceCount"] == "1"


def test_data_flows_through_typed_artifacts():
    """What a step reads comes from the step before it as a KFP artifact, not through fixed store keys."""
    spec = pipeline_spec()
    tasks = spec["root"]["dag"]["tasks"]

    def produced(task: str, name: str) -> tuple[str, str]:
        ref = tasks[task]["inputs"]["artifacts"][name]["taskOutputArtifact"]
        return ref["producerTask"], ref["outputArtifactKey"]

    assert produced("training-set", "interactions") == ("receive", "interactions")
    assert produced("training-set", "impressions") == ("receive", "impressions")
    assert produced("training-set", "crossing") == ("receive", "crossing")  # the snapshot times, decided once
    assert produced("training-set", "snapshots") == ("snapshots", "snapshots")
    assert produced("snapshots", "catalogue") == ("receive", "catalogue")
    assert produced("evaluate", "interactions") == ("receive", "interactions")
    assert "features_ready" not in tasks["training-set"]["inputs"].get("parameters", {})
    push = spec["components"]["comp-condition-1"]["dag"]["tasks"]["push"]["inputs"]["artifacts"]
    assert push["blessing"] == {"componentInputArtifact": "pipelinechannel--evaluate-blessing"}
    outputs = spec["components"]["comp-push"]["outputDefinitions"]["artifacts"]
    assert outputs["pushed"]["artifactType"]["schemaTitle"] == "system.Model"


def test_run_parameters_have_one_source():
    """The pipeline's defaults, the DAG's params and `shoprank run`'s options are NightlyParams'."""
    from dataclasses import fields

    from shoprank.cli import build_parser
    from shoprank.orchestration.params import CROSSING_KEY, DEFAULTS, PRIVATE_PARAMS, RUN_KEY, NightlyParams

    spec = pipeline_spec()
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert "defaultValue" not in declared.pop(CROSSING_KEY)  # the crossing the private stage wrote: no default
    pipeline = {k: v["defaultValue"] for k, v in declared.items()}
    expected = {k: v for k, v in DEFAULTS.arguments().items() if k not in PRIVATE_PARAMS}
    assert pipeline.pop(RUN_KEY) == ""  # set by the orchestrator, not a user's choice
    assert set(pipeline) == set(expected)
    assert all(pipeline[k] == expected[k] for k in expected)  # (YAML numbers: 6.0 == 6)
    run = build_parser().parse_args(["run"])
    cli = {"source": run.source, "source_path": run.source_path, "interval_start": run.start,
           "interval_end": run.end, "n_snapshots": run.n_snapshots, "max_users_per_cutoff": run.max_users,
           "epochs": run.epochs, "sequence_epochs": run.sequence_epochs, "seed": run.seed,
           "search_trials": run.search_trials, "ensemble": run.ensemble,
           "push_label": run.label}
    assert cli == DEFAULTS.arguments() and {f.name for f in fields(NightlyParams)} == set(cli)


def test_the_night_builds_the_index_then_trains_and_gates_the_search_ranker():
    spec = pipeline_spec()
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["index"]["inputs"]["artifacts"]["snapshots"]["taskOutputArtifact"]["producerTask"] == "snapshots"
    inputs = tasks["search-ranker"]["inputs"]["artifacts"]
    assert inputs["search_index"]["taskOutputArtifact"] == {"outputArtifactKey": "search_index",
                                                            "producerTask": "index"}
    assert inputs["queries"]["taskOutputArtifact"] == {"outputArtifactKey": "queries", "producerTask": "receive"}
    gate = tasks["condition-2"]["triggerPolicy"]["condition"]
    assert gate == "inputs.parameter_values['pipelinechannel--search-ranker-Output'] == 'blessed'"
    push = spec["components"]["comp-condition-2"]["dag"]["tasks"]["push-2"]["inputs"]
    assert push["parameters"]["model_name"]["runtimeValue"]["constant"] == "search_ranker"
    assert push["artifacts"]["blessing"] == {"componentInputArtifact": "pipelinechannel--search-ranker-blessing"}


def test_no_component_of_the_pipeline_touches_raw_data():
    """The public pipeline holds no private task: none is named like one, no parameter names a raw
    source, and no component's code reaches the private stage, the curated store, the served log or
    the pseudonymisation key (every step's source is in the YAML: KFP ships it to the pod)."""
    from shoprank.orchestration.params import PRIVATE_PARAMS

    spec = pipeline_spec()
    assert not set(spec["root"]["inputDefinitions"]["parameters"]) & set(PRIVATE_PARAMS)
    components = {name.removeprefix("comp-") for name in spec["components"]}
    assert not components & {"ingest", "validate", "publish", "pseudonymise", "features"}
    raw_markers = ("orchestration.private", "zone_runner", "data.curated", "read_events", "read_served",
                   "features.pseudonymise", "current_key", "load_keys", "user_id", "session_id")
    for name, executor in spec["deploymentSpec"]["executors"].items():
        code = " ".join(executor["container"].get("command", []) + executor["container"].get("args", []))
        assert not [m for m in raw_markers if m in code], f"{name} reaches raw data"


def test_every_step_runs_in_the_image_pinned_by_digest():
    """A tag can be moved under a compiled pipeline; the digest is the one the cluster pins."""
    from components import pinned_image

    images = {e["container"]["image"] for e in pipeline_spec()["deploymentSpec"]["executors"].values()}
    assert images == {pinned_image()} and "@sha256:" in pinned_image()


def test_no_step_is_served_from_the_cache():
    """A night's steps write the online store, model versions and the index: KFP must run them."""
    spec = pipeline_spec()
    graphs = [spec["root"], *spec["components"].values()]
    tasks = [t for graph in graphs for t in graph.get("dag", {}).get("tasks", {}).values()]
    assert tasks and all(not t.get("cachingOptions", {}).get("enableCache") for t in tasks if "componentRef" in t
                         and not t["componentRef"]["name"].startswith("comp-condition"))
