from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def validate(batch: dsl.Input[dsl.Dataset], interval_start: str, interval_end: str, report: dsl.Output[dsl.HTML]):
    """The Great Expectations gate: a failed gate fails this task, so nothing downstream runs."""
    import shutil
    from pathlib import Path

    from shoprank.orchestration import steps

    result = steps.validate(Path(batch.path), interval_start, interval_end)
    docs = Path(result["data_docs"]) if result["data_docs"] else None
    if docs and docs.is_file():
        shutil.copyfile(docs, report.path)
    else:
        Path(report.path).write_text(f"<pre>validation passed with {result['findings']} finding(s)</pre>")
