"""Every subcommand: no abbreviations, checked numbers with one-line errors, --help ends with
examples and the files written, train/export in a base install say what to install."""
from __future__ import annotations

import subprocess
import sys

import pytest

from epick.runtime.cli import COMMANDS, main

BAD_NUMBERS = ["0", "-3", "nan", "inf", "abc"]
# (subcommand, required arguments, numeric option) for every subcommand with a numeric option
NUMERIC = [
    ("pick", ["m.mrc", "--model", "m.onnx", "--out", "o"], "--diameter"),
    ("pick", ["m.mrc", "--model", "m.onnx", "--out", "o"], "--batch"),
    ("pick", ["m.mrc", "--model", "m.onnx", "--out", "o"], "--threshold"),
    ("pick", ["m.mrc", "--model", "m.onnx", "--out", "o"], "--min-distance"),
    ("pick", ["m.mrc", "--model", "m.onnx", "--out", "o"], "--top-k"),
    ("eval", ["--picks", "p", "--truth", "t"], "--diameter"),
    ("eval", ["--picks", "p", "--truth", "t"], "--radius"),
    ("convert", ["p", "--to", "box", "--out", "o"], "--diameter"),
    ("train", ["--data", "m", "c", "-o", "x.epick"], "--diameter"),
    ("train", ["--data", "m", "c", "-o", "x.epick"], "--batch-size"),
    ("train", ["--data", "m", "c", "-o", "x.epick"], "--epochs"),
    ("train", ["--data", "m", "c", "-o", "x.epick"], "--lr"),
    ("export", ["m.epick", "--onnx", "m.onnx"], "--workspace-gb"),
    ("simulate", ["micrographs", "out"], "--n"),
    ("simulate", ["micrographs", "out"], "--pixel-size"),
]


@pytest.mark.parametrize("command,required,option", NUMERIC)
def test_numbers_refuse_zero_negative_and_non_finite(capsys, command, required, option):
    for bad in BAD_NUMBERS:
        argv = [command, *required, option, bad]
        if command == "simulate":
            argv = [command, required[0], option, bad, required[1]]
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert option in lines[0] and repr(bad) in lines[0]


def test_threshold_one_is_allowed_but_not_above(capsys):
    with pytest.raises(SystemExit):
        main(["pick", "m.mrc", "--model", "m.onnx", "--out", "o", "--threshold", "1.5"])
    assert "(0, 1]" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["pick", "m.mrc", "--model", "m.onnx", "--o", "out"],
                                  ["pick", "m.mrc", "--mod", "m.onnx", "--out", "o"],
                                  ["convert", "p", "--to", "box", "--out", "o", "--diam", "10"]])
def test_abbreviations_are_refused(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_ends_with_examples_and_the_files_written(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    examples = out.split("examples:\n", 1)[1].split("\n\nwrites:\n")
    assert len(examples) == 2, "examples, then the files written"
    lines = [ln.strip() for ln in examples[0].splitlines() if ln.strip()]
    assert 2 <= len(lines) <= 3 and all(ln.startswith(f"epick {command}") for ln in lines)
    assert examples[1].strip()


@pytest.mark.parametrize("command,argv,extra", [
    ("train", ["--data", "m", "c", "-o", "x.epick"], "train"),
    ("export", ["m.epick", "--onnx", "m.onnx"], "export")])
def test_train_and_export_in_a_base_install_name_the_extra(command, argv, extra):
    # a base install: torch and onnx cannot be imported
    code = ("import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None; "
            "from epick.runtime.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, command, *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"pip install 'epick[{extra}]'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_every_parser_of_the_packages_refuses_abbreviations():
    """argparse parsers in the installed packages are cli_args.ArgumentParser or set allow_abbrev=False."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for folder in ("runtime", "trainer", "export", "simulator", "cuda_kernels"):
        for path in (root / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"argparse\.ArgumentParser\(", line) and "allow_abbrev=False" not in line:
                    offenders.append(f"{path.relative_to(root)}:{number}")
    assert offenders == []
