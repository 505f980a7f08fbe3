"""The repository says what it holds: the Makefile calls scripts that exist, the README's layout
table lists exactly the top-level folders, and build tooling is not installed with the package."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_makefile_targets_call_scripts_that_exist():
    text = (REPO / "Makefile").read_text()
    benchmarks = re.search(r"^BENCHMARKS := (.+)$", text, flags=re.M).group(1).split()
    assert benchmarks and all((REPO / "benchmarks" / f"{b}.py").is_file() for b in benchmarks), benchmarks
    for script in re.findall(r"(?:benchmarks|tools)/[\w/]+\.py", text):
        assert (REPO / script).is_file(), script


def test_readme_layout_table_matches_the_tree():
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Layout"):]
    listed = set(re.findall(r"^\| `([\w]+)/` \|", table, flags=re.M))
    folders = {p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
               and p.name not in ("build", "dist", "bench_results") and not p.name.endswith(".egg-info")}
    assert listed == folders, (sorted(listed - folders), sorted(folders - listed))


def test_build_tooling_is_not_an_installed_package():
    setup = (REPO / "setup.py").read_text()
    folders = re.search(r"FOLDERS = \{(.+?)\}", setup, flags=re.S).group(1)
    assert "tools" not in folders and "benchmarks" not in folders
    assert not (REPO / "trainer" / "recipes").exists()
    assert (REPO / "tools" / "demo_assets.py").is_file()
