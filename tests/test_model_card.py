"""`epick models MODEL`: what a model file holds, read from its metadata without torch."""
import json
import subprocess
import sys

import pytest

from epick.runtime import bundled
from epick.runtime.cli import EXIT_BROKEN_PIPE, main
from epick.runtime.errors import ModelFileError
from epick.runtime.model_card import describe_model, read_model_metadata, training_steps


def _general():
    model = bundled.default_model()
    if model.epick is None:
        pytest.skip("the bundled general model ships no .epick")
    return model


def test_the_bundled_model_file_and_its_onnx_describe_the_same_training():
    model = _general()
    meta = read_model_metadata(model.epick)
    assert read_model_metadata(model.onnx)["history"] == meta["history"]   # the ONNX carries the model's metadata
    lines = describe_model(meta)
    datasets = {h["name"] for h in meta["history"]}
    steps = training_steps(meta["history"])
    assert lines[2] == f"trained in {len(steps)} run{'s' if len(steps) > 1 else ''}, oldest first:"
    assert all(name in "\n".join(lines) for name in datasets)
    # one exemplar line per dataset, with the objects the file holds
    for name in {row["dataset"] for row in meta["exemplars"]}:
        count = sum(row["count"] for row in meta["exemplars"] if row["dataset"] == name)
        assert any(line.strip().startswith(f"{name}: ") and line.endswith(f"{count} objects") for line in lines)
    onnx_lines = describe_model(read_model_metadata(model.onnx), exported=True)
    assert onnx_lines[-1].startswith("exemplars: in the .epick model file")


def test_runs_are_grouped_and_a_continual_step_says_what_it_kept():
    history = [{"name": n, "mode": "joint", "date": "d1", "micrographs": 3, "particles": 90, "epochs": 40,
                "best_epoch": 35, "val_ap": 0.76} for n in ("betagal", "sim")]
    history.append({"name": "empiar10947", "mode": "continual", "date": "d2", "micrographs": 7, "particles": 1904,
                    "epochs": 40, "best_epoch": 16, "val_ap": 0.819,
                    "old_exemplar_ap": {"betagal": {"before": 0.824, "after": 0.826}, "sim": {"before": 0.962,
                                                                                             "after": None}}})
    meta = {"object_type": "particle", "architecture": {"name": "dla34-w0.25", "test_flips": 4},
            "preprocess": {"target_width": 1024, "lowpass": 2.0, "highpass": 32.0, "particle_px": 0.0},
            "history": history, "exemplars": []}
    assert [len(step) for step in training_steps(history)] == [2, 1]
    lines = describe_model(meta)
    assert "4 test flips" in lines[0] and "fixed width 1024 px, low-pass 2, background 32" in lines[0]
    assert "no threshold stored" in lines[0]
    assert lines[3].startswith("  1. joint on betagal (3 micrographs, 90 objects), sim (3 micrographs")
    assert lines[3].endswith("validation AP 0.760 (mean over them)")
    assert lines[4].startswith("  2. continual on empiar10947 (7 micrographs, 1904 objects)")
    assert lines[4].endswith("betagal 0.824 -> 0.826, sim 0.962 -> n/a")
    assert lines[-1] == "exemplars: none"
    meta["preprocess"].update(max_particle_px=64.0, rescale_px=32.0)
    assert ("fixed width 1024 px (given a diameter, particles above 64 px there are resampled to 32), low-pass 2"
            in describe_model(meta)[0])


def test_files_that_are_not_epick_models_are_named_with_the_fix(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        read_model_metadata(tmp_path / "missing.epick")
    junk = tmp_path / "junk.epick"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ModelFileError, match="junk.epick: is not a readable epick model file"):
        read_model_metadata(junk)
    header = json.dumps({"__metadata__": {"format": "something-else"}}).encode()
    other = tmp_path / "other.epick"
    other.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(ModelFileError, match="not an epick model"):
        read_model_metadata(other)


def test_the_model_card_needs_no_torch():
    path = _general().epick
    code = ("import sys; sys.modules['torch'] = None\n"   # any import of torch now fails
            "from epick.runtime.model_card import describe_model, read_model_metadata\n"
            f"print(describe_model(read_model_metadata({str(path)!r}))[2])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("trained in ")


def test_epick_models_with_files(capsys, tmp_path):
    model = _general()
    assert main(["models", model.name, str(model.onnx)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{model.epick}\n  ") and f"\n{model.onnx}\n  " in out
    assert main(["models", "--json", model.name]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["file"] == str(model.epick) and entry["metadata"]["history"]
    assert main(["models", str(tmp_path / "missing.epick")]) == 2
    assert "missing.epick: no such model file" in capsys.readouterr().err
    # an unknown name is named as given (not as a --model value) with the bundled names
    assert main(["models", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "error: no-such-model: no such file, and no bundled model of that name" in err
    assert model.name in err.split("(bundled: ")[1] and "--model" not in err


def test_a_reader_that_stops_early_is_not_an_internal_error():
    model = _general()
    # enough JSON to fill the pipe, read 10 bytes of it, close
    proc = subprocess.Popen([sys.executable, "-m", "epick.runtime.cli", "models", "--json"] + [model.name] * 40,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(proc.stdout.read(10)) == 10
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == EXIT_BROKEN_PIPE
    assert "internal error" not in err and "Traceback" not in err
