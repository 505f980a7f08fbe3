"""Exit codes a script can trust: a crash is never 1 (1 = every micrograph failed), the codes are
in `epick pick --help`; `--model DIR` says it is a folder (issue 12, item 12)."""
from __future__ import annotations

import pytest

from epick.runtime import cli
from epick.runtime.cli import main


def test_a_crash_exits_70_with_the_traceback_never_1(monkeypatch, capsys):
    from epick.runtime.commands import pick

    def bug(args, *a, **k):
        raise AttributeError("'NoneType' object has no attribute 'x'")

    monkeypatch.setattr(pick, "run", bug)
    assert main(["pick", "mics/", "--model", "m.onnx", "--out", "o"]) == cli.EXIT_CRASH == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "AttributeError" in err and "internal error" in err and "report" in err


def test_pick_help_documents_every_exit_code(capsys):
    with pytest.raises(SystemExit):
        main(["pick", "--help"])
    text = capsys.readouterr().out
    section = text.split("exit codes:")[1]
    for code, words in (("0", "something was picked"), ("1", "every micrograph failed"), ("2", "run-level"),
                        ("70", "crashed"), ("130", "interrupted")):
        assert f"  {code} " in section and words in section


def test_model_given_as_a_folder_says_so(tmp_path, capsys):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "ribo.onnx").write_bytes(b"x")
    assert main(["pick", str(tmp_path), "--model", str(folder), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "is a folder, not a model file" in err and "ribo.onnx" in err and "ONNX file not found" not in err
