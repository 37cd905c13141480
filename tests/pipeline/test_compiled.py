"""The committed pipelines/nightly.yaml is what the code compiles to (the KFP UI uploads it)."""

import yaml

from pipelines.nightly import COMPILED, compile_pipeline


def test_compiled_yaml_is_up_to_date(tmp_path):
    fresh = compile_pipeline(tmp_path / "nightly.yaml")
    assert yaml.safe_load(fresh.read_text()) == yaml.safe_load(COMPILED.read_text()), (
        "pipelines/nightly.yaml is stale: run `make compile` and commit it")


def test_pipeline_has_the_eight_steps_and_a_blessing_gate():
    spec = yaml.safe_load(COMPILED.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert {"ingest", "validate", "features", "training-set", "train", "evaluate"} <= set(tasks)
    assert tasks["features"]["dependentTasks"] == ["ingest", "validate"]
    blessed = tasks["condition-1"]
    assert blessed["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--evaluate-Output'] == 'blessed'")
    inner = spec["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(inner) == {"infra-validate", "push"}
    train_resources = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert train_resources["accelerator"]["resourceCount"] == "1"
