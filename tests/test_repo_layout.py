"""The repository says what it holds: the Makefile calls scripts that exist, the README's layout
table lists exactly the top-level folders, and build tooling is not installed with the package."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

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
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout: the tracked folders are unknown")
    folders = {f.split("/")[0] for f in tracked if "/" in f and not f.startswith(".")}
    assert listed == folders, (sorted(listed - folders), sorted(folders - listed))


def test_build_tooling_is_not_an_installed_package():
    setup = (REPO / "setup.py").read_text()
    folders = re.search(r"FOLDERS = \{(.+?)\}", setup, flags=re.S).group(1)
    assert "tools" not in folders and "benchmarks" not in folders
    assert not (REPO / "trainer" / "recipes").exists()
    assert (REPO / "tools" / "demo_assets.py").is_file()
