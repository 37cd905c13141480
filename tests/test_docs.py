"""The docs stay true to the code and the benchmark results: the generated tables equal what
`bench/results/*.json` gives (and the check notices when they do not), the README stays a short
entrance, no page carries issue numbers or claims the code no longer makes, and every relative link
lands on a file (and heading) that exists. Fast: no services, no TensorFlow."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bench import docs_tables

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PAGES = ["README.md", "data-and-validation.md", "features.md", "models-and-quality.md", "serving.md", "search.md",
         "feedback-loop.md", "orchestration.md", "scale.md", "infrastructure.md", "operations.md"]
README_MAX_LINES = 200

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
FORBIDDEN = {
    "an issue number": re.compile(r"\bissues?\s*#?\d+", re.I),
    "an issue reference": re.compile(r"(?<![\w&/])#\d+\b"),
    "labels.json": re.compile(r"labels\.json", re.I),
}


def doc_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """The text without fenced code blocks (links and headings inside them are not links or headings)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(prose(page.read_text())):
        base = slug(heading)
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


# -- the generated tables ---------------------------------------------------------------------------


def test_generated_tables_equal_the_results() -> None:
    problems = docs_tables.check()
    assert problems == [], "\n".join(problems) + "\nrun `make docs` and commit the pages"


def test_every_registered_table_is_on_a_page() -> None:
    assert docs_tables.used(docs_tables.pages()) == set(docs_tables.TABLES)


def _copy_page(tmp_path: Path, name: str) -> Path:
    (tmp_path / "docs").mkdir()
    copy = tmp_path / "docs" / name
    shutil.copy(ROOT / "docs" / name, copy)
    return copy


def test_check_fails_on_an_altered_table_and_writes_nothing(tmp_path: Path) -> None:
    page = _copy_page(tmp_path, "serving.md")
    text = page.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| sqlite | 200 |"))
    cells = row.split(" | ")
    cells[5] = "1.0"  # p50 ms: a figure the JSON does not say
    altered = text.replace(row, " | ".join(cells))
    assert altered != text
    page.write_text(altered)

    problems = docs_tables.check(root=tmp_path)
    assert problems == ["docs/serving.md: table 'serving.latency' differs from what the results give"]
    assert docs_tables.main(["--check", "--root", str(tmp_path)]) == 1
    assert page.read_text() == altered  # --check writes nothing

    docs_tables.update(root=tmp_path)  # `make docs` puts the JSON's text back
    assert page.read_text() == text
    assert docs_tables.check(root=tmp_path) == []


def test_check_names_an_unknown_table_and_a_missing_results_file(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text("# x\n\n<!-- table: no.such.table -->\n<!-- /table -->\n")
    assert any("unknown table 'no.such.table'" in p for p in docs_tables.check(root=tmp_path))

    page.write_text("# x\n\n<!-- table: validation -->\n<!-- /table -->\n")
    (tmp_path / "results").mkdir()
    problems = docs_tables.check(results=tmp_path / "results", root=tmp_path)
    assert len(problems) == 1 and "validation.json" in problems[0]


def test_each_table_says_how_to_reproduce_it() -> None:
    for name in docs_tables.TABLES:
        block = docs_tables.block(name)
        assert "Reproduce: `" in block, name
        assert docs_tables.TABLES[name].source_name in block, name


# -- the README and the pages -----------------------------------------------------------------------


def test_readme_is_a_short_entrance() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


@pytest.mark.parametrize("name", PAGES)
def test_the_docs_pages_exist(name: str) -> None:
    page = ROOT / name if name == "README.md" else ROOT / "docs" / name
    assert page.is_file(), f"{page} is missing"
    assert page.read_text().lstrip().startswith("# "), f"{page.name} has no title"
    assert (ROOT / "docs" / "README.md").is_file()


def test_operations_has_the_event_roll_section_the_alerts_link_to() -> None:
    assert "the-event-roll" in anchors(ROOT / "docs" / "operations.md")
    rules = (ROOT / "infra" / "k8s" / "base" / "online-api" / "alerts.yaml").read_text()
    assert "docs/operations.md#the-event-roll" in rules


def test_no_issue_numbers_or_stale_claims() -> None:
    found = []
    for page in doc_pages():
        for n, line in enumerate(page.read_text().splitlines(), 1):
            found += [f"{page.relative_to(ROOT)}:{n}: {what}: {line.strip()[:100]}"
                      for what, pattern in FORBIDDEN.items() if pattern.search(line)]
    assert found == [], "\n".join(found)


def test_relative_links_point_at_files_and_headings_that_exist() -> None:
    broken = []
    for page in doc_pages():
        for target in LINK.findall(prose(page.read_text())):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not dest.exists():
                broken.append(f"{where}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{where}: no heading #{anchor}")
    assert broken == [], "\n".join(broken)


def test_readme_headline_figures_agree_with_the_results() -> None:
    readme = (ROOT / "README.md").read_text()

    def load(name: str) -> dict:
        return json.loads((RESULTS / name).read_text())

    quality = load("quality.json")["temporal"]
    recall = docs_tables.quality_gains(quality, "recall@20")[1]
    ndcg = docs_tables.quality_gains(quality, "ndcg@10")[1]
    serving = load("serving.json")
    p99 = serving["recommend_by_store"]["sqlite"]["200"]["p99_ms"]
    search_p99 = serving["search"]["by_rate"]["100"]["p99_ms"]
    clean = [float(rate) for rate, r in serving["intake"]["by_rate"].items()
             if r["lost"] == r["stored_twice"] == r["errors"] == 0]
    scale = [run for run in load("scale.json")["runs"] if run.get("total_s")][-1]  # the largest night that finished
    ratio = max(r["time_ratio"] for r in load("validation.json")["results"])
    expected = [f"{recall:+.1%} Recall@20", f"{ndcg:+.1%} NDCG@10", f"p99 **{p99:.0f} ms**",
                f"p99 **{search_p99:.0f} ms**", f"**{max(clean):,.0f} events/s**",
                f"**{scale['events'] / 1e6:.0f}M events**", f"**{scale['total_s'] / 60:.0f} min**",
                f"peak {scale['peak_rss_gb']:.1f} GB", f"**{ratio:.1f}×**"]
    missing = [figure for figure in expected if figure not in readme]
    assert missing == [], f"README.md headline figures differ from bench/results: expected {missing}"
