"""epick-relion: RELION 4/5's External job calling convention, end to end on a small project folder
(micrographs from epick's simulator, a micrographs_ctf.star as RELION's CtfFind writes it)."""
from __future__ import annotations

import importlib.metadata
import os

import numpy as np
import pytest

from _models import make_onnx
from epick.runtime.integrations.relion import coordinate_path, main
from epick.runtime.io.coordinates import read_picks
from epick.runtime.io.micrograph import write_mrc

starfile = pytest.importorskip("starfile")

MICS_CTF = """
# version 30001

data_optics

loop_
_rlnOpticsGroupName #1
_rlnOpticsGroup #2
_rlnMicrographOriginalPixelSize #3
_rlnVoltage #4
_rlnSphericalAberration #5
_rlnAmplitudeContrast #6
_rlnMicrographPixelSize #7
opticsGroup1            1     0.885000   200.000000     1.400000     0.100000     1.770000


# version 30001

data_micrographs

loop_
_rlnMicrographName #1
_rlnOpticsGroup #2
_rlnCtfImage #3
_rlnDefocusU #4
_rlnDefocusV #5
_rlnCtfAstigmatism #6
_rlnDefocusAngle #7
_rlnCtfFigureOfMerit #8
_rlnCtfMaxResolution #9
{rows}
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_onnx(tmp_path_factory.mktemp("model") / "blob.onnx", target_width=256, diameter=40.0)


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """A RELION project: MotionCorr/job002/Movies/*.mrc and CtfFind/job003/micrographs_ctf.star."""
    from epick.simulator import simulate_micrograph

    names = []
    for i in range(3):
        sim = simulate_micrograph((384, 384), "apoferritin", n_particles=8, pixel_size=1.77, seed=i, clean=True)
        name = f"MotionCorr/job002/Movies/20240101_{i:04d}_fractions.mrc"
        write_mrc(tmp_path / name, sim.image)            # no pixel size in the header: it comes from optics
        names.append(name)
    rows = "\n".join(f"{n} 1 CtfFind/job003/Movies/{n.rsplit('/', 1)[1][:-4]}.ctf:mrc 10863.8 10575.3 "
                     "288.5 19.9 0.131 4.4" for n in names)
    star = tmp_path / "CtfFind/job003/micrographs_ctf.star"
    star.parent.mkdir(parents=True)
    star.write_text(MICS_CTF.format(rows=rows))
    monkeypatch.chdir(tmp_path)   # RELION runs External jobs from the project directory
    return tmp_path, names


def _run(model, *params):
    # exactly RELION's order: --o, --in_mics, the Params tab's --label value pairs, --j, other args
    return main(["--o", "External/job012/", "--in_mics", "CtfFind/job003/micrographs_ctf.star",
                 "--model", str(model), "--threshold", "0.2", *params, "--j", "1"])


def test_external_job_writes_what_relion_reads(project, model):
    root, names = project
    assert _run(model) == 0
    job = root / "External/job012"
    assert (job / "RELION_JOB_EXIT_SUCCESS").is_file() and not (job / "RELION_JOB_EXIT_FAILURE").exists()
    nodes = starfile.read(job / "RELION_OUTPUT_NODES.star", always_dict=True)["output_nodes"]
    assert list(nodes["rlnPipeLineNodeName"]) == ["External/job012/autopick.star"]
    assert list(nodes["rlnPipeLineNodeTypeLabel"]) == ["MicrographCoordsGroup.star.relion.autopick"]
    index = starfile.read(job / "autopick.star", always_dict=True)["coordinate_files"]
    assert list(index["rlnMicrographName"]) == names             # exactly as in micrographs_ctf.star
    expected = [f"External/job012/Movies/20240101_{i:04d}_fractions_autopick.star" for i in range(3)]
    assert list(index["rlnMicrographCoordinates"]) == expected   # relative to the project directory
    total = 0
    for coords in expected:
        table = starfile.read(root / coords)
        assert {"rlnCoordinateX", "rlnCoordinateY", "rlnAutopickFigureOfMerit"} <= set(table.columns)
        [picks] = read_picks(root / coords)
        assert picks.pixel_size == pytest.approx(1.77)          # from the optics table
        assert np.all((picks.x >= 0) & (picks.x < 384) & (picks.y >= 0) & (picks.y < 384))
        total += len(picks)
    assert total > 0
    # epick reads the job back through its index, named by the micrographs
    assert sorted(p.micrograph for p in read_picks(job / "autopick.star")) == names


def test_pipeline_control_appended_by_relion_is_accepted(project, model):
    # RELION adds --pipeline_control JOBDIR when the executable's path contains 'relion_'
    root, _ = project
    assert _run(model, "--pipeline_control", "External/job012/") == 0
    assert (root / "External/job012/RELION_JOB_EXIT_SUCCESS").is_file()


def test_continue_picks_only_new_micrographs(project, model):
    root, names = project
    assert _run(model) == 0
    first = root / coordinate_path("External/job012/", names[0])
    first.write_text(first.read_text() + "\n# kept\n")
    assert _run(model) == 0
    assert first.read_text().endswith("# kept\n")                # not picked again
    assert (root / "External/job012/RELION_JOB_EXIT_SUCCESS").is_file()


def test_failures_leave_relion_job_exit_failure(project, model, capsys):
    root, _ = project
    assert _run(root / "missing.onnx") == 2
    job = root / "External/job012"
    assert (job / "RELION_JOB_EXIT_FAILURE").is_file() and not (job / "RELION_JOB_EXIT_SUCCESS").exists()
    assert "missing.onnx" in (job / "RELION_JOB_EXIT_FAILURE").read_text()
    with pytest.raises(SystemExit) as exit_info:                 # a parameter RELION passed is refused
        _run(model, "--diameter", "-5")
    assert exit_info.value.code == 2
    assert "--diameter" in capsys.readouterr().err
    assert (job / "RELION_JOB_EXIT_FAILURE").is_file()


def test_coordinate_paths_follow_relions_autopicker():
    assert coordinate_path("AutoPick/job006/", "MotionCorr/job002/Movies/a.mrc") == "AutoPick/job006/Movies/a_autopick.star"
    assert coordinate_path("External/job012", "Import/job001/raw/day1/b.tiff") == "External/job012/raw/day1/b_autopick.star"
    assert coordinate_path("External/job012/", "mics/c.mrc") == "External/job012/mics/c_autopick.star"


def test_console_scripts_are_installed():
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("epick-relion") == "epick.runtime.integrations.relion:main"
    assert scripts.get("epick-topaz") == "epick.runtime.integrations.topaz:main"
    assert scripts.get("epick-cryosparc") == "epick.runtime.integrations.cryosparc_job:main"


def test_relion_job_folders_are_input_to_eval_convert_and_train(project, model, capsys):
    """A RELION job folder (coordinates in Movies/, autopick.star beside job.star) read through its index."""
    root, names = project
    assert _run(model) == 0
    job = root / "External/job012"
    (job / "job.star").write_text("data_job\n_rlnJobTypeLabel relion.external\n")   # as RELION leaves it
    from epick.runtime.io.coordinates import find_coordinate_files

    assert find_coordinate_files([job]) == [job / "autopick.star"]
    # a ManualPick job holds manualpick.star; the truth here is the same picks
    manual = root / "ManualPick/job004"
    (manual / "Movies").mkdir(parents=True)
    rows = []
    for name in names:
        coords = coordinate_path("ManualPick/job004/", name).replace("_autopick.star", "_manualpick.star")
        (root / coords).write_text((root / coordinate_path("External/job012/", name)).read_text())
        rows.append(f"{name} {coords}")
    (manual / "manualpick.star").write_text("data_coordinate_files\nloop_\n_rlnMicrographName #1\n"
                                            "_rlnMicrographCoordinates #2\n" + "\n".join(rows) + "\n")
    (manual / "note.txt").write_text("relion_manualpick\n")
    capsys.readouterr()
    from epick.runtime.cli import main as epick

    assert epick(["eval", "--picks", str(job), "--truth", str(manual), "--diameter", "40", "--quiet"]) == 0
    assert "precision 1.000" in capsys.readouterr().out
    assert epick(["convert", str(job), "--to", "box", "--out", str(root / "boxes"), "--diameter", "40"]) == 0
    assert sorted(p.name for p in (root / "boxes").glob("*.box")) == [f"20240101_{i:04d}_fractions.box" for i in range(3)]
    from epick.trainer.data import read_all_picks

    found = find_coordinate_files([manual])
    assert sorted(p.key for p in read_all_picks(found)) == [f"20240101_{i:04d}_fractions" for i in range(3)]
