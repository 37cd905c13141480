from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def receive(crossing_key: str, crossing: dsl.Output[dsl.Artifact], interactions: dsl.Output[dsl.Dataset],
            impressions: dsl.Output[dsl.Dataset], queries: dsl.Output[dsl.Dataset],
            catalogue: dsl.Output[dsl.Dataset]):
    """Take the private stage's crossing (`features/crossing/<batch>/manifest.json`): every table is
    checked against the manifest's sha256, and handed on as a typed artifact. Nothing before this
    step runs in the public zone, and nothing here is a raw id, a session id or unscrubbed text.
    `crossing` carries the manifest: the data interval, the snapshot times, the key id."""
    from pathlib import Path

    from shoprank.orchestration import steps

    tables = {"interactions": interactions, "impressions": impressions, "queries": queries, "catalogue": catalogue}
    handed = steps.receive(crossing_key, Path(crossing.path), {name: Path(a.path) for name, a in tables.items()})
    crossing.metadata.update({"interval": list(handed.interval), "source": handed.source,
                              "snapshot_times": list(handed.snapshot_times), "key_id": handed.key_id,
                              "manifest": crossing_key})
    for name, artifact in tables.items():
        artifact.metadata.update({"rows": handed.tables[name]["rows"], "pseudonymised": True})
    queries.metadata["scrubbed"] = True
