"""The chaos run (issue 12): `epick pick --watch` SIGKILLed again and again while micrographs arrive
by chunked, stalled, renamed and rewritten copies loses nothing and picks nothing from a partial
file. Slow (a minute or more on 2 cores): `python -m pytest -m slow tests/test_watch_chaos.py`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_watch_under_repeated_sigkill_loses_and_corrupts_nothing(tmp_path):
    out = tmp_path / "chaos.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_watch_chaos.py"), "--micrographs", "12",
                           "--kills", "8", "--seed", "3", "--json", str(out)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())["results"]["chaos run"]
    assert result["kills"] >= 8 and result["final_exit_code"] == 0
    assert result["lost"] == [] and result["corrupted"] == [] and result["failed"] == {}, result
