"""epick-cryosparc's picking step: a cryosparc-tools exposures Dataset in, particles Dataset out.
(The connection to a running cryoSPARC, job creation and saving, is not tested: no cryoSPARC here.)"""
from __future__ import annotations

import numpy as np
import pytest

from _models import blob_micrograph, make_onnx
from epick.runtime.integrations.cryosparc_job import build_parser, pick_exposures
from epick.runtime.io.micrograph import write_mrc
from epick.runtime.picker import Picker

dataset = pytest.importorskip("cryosparc.dataset")


def test_pick_exposures_gives_particles_joined_to_their_exposures(tmp_path):
    model = make_onnx(tmp_path / "blob.onnx", target_width=256, diameter=40.0)
    names = [f"J12/motioncorrected/{i:020d}_mic{i}_patch_aligned_doseweighted.mrc" for i in range(3)]
    for name in names[:2]:                                     # the third is missing on disk
        write_mrc(tmp_path / "CS-proj" / name, blob_micrograph((384, 448), n=8, seed=len(name))[0])
    exposures = dataset.Dataset.allocate(3, [("micrograph_blob/path", "O"), ("micrograph_blob/shape", "<u4", (2,)),
                                             ("micrograph_blob/psize_A", "<f4")])
    exposures["micrograph_blob/path"] = names
    exposures["micrograph_blob/shape"] = [(384, 448)] * 3
    exposures["micrograph_blob/psize_A"] = 1.06
    with Picker(model, "onnxruntime-cpu", threshold=0.5) as picker:
        particles, failures = pick_exposures(exposures, picker, tmp_path / "CS-proj")
    assert list(failures) == [names[2]]
    assert len(particles) > 0
    paths = [p.decode() if isinstance(p, bytes) else p for p in particles["location/micrograph_path"]]
    assert set(paths) == set(names[:2])
    uid_of = dict(zip(names, np.asarray(exposures["uid"]).tolist()))
    assert np.asarray(particles["location/micrograph_uid"]).tolist() == [uid_of[p] for p in paths]
    np.testing.assert_allclose(particles["location/micrograph_psize_A"], 1.06, rtol=1e-6)
    assert np.all((np.asarray(particles["location/center_x_frac"]) > 0) & (np.asarray(particles["location/center_x_frac"]) < 1))


def test_command_line_needs_project_workspace_exposures_and_model(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--project", "P3", "--workspace", "W2", "--model", "m.onnx"])
    assert "--exposures" in capsys.readouterr().err
    args = build_parser().parse_args(["--project", "P3", "--workspace", "W2", "--exposures", "J12", "--model", "m.onnx"])
    assert (args.output, args.threshold) == ("exposures", None)


def test_connection_keywords_fit_cryosparc_tools_4_and_5(monkeypatch):
    from epick.runtime.integrations.cryosparc_job import connection

    monkeypatch.setenv("CRYOSPARC_EMAIL", "a@b.org")
    monkeypatch.setenv("CRYOSPARC_PASSWORD", "pw")
    monkeypatch.delenv("CRYOSPARC_LICENSE", raising=False)
    monkeypatch.delenv("CRYOSPARC_LICENSE_ID", raising=False)
    assert connection("http://em.example.org:61000") == {"host": "em.example.org", "base_port": 61000,
                                                         "email": "a@b.org", "password": "pw"}
    monkeypatch.setenv("CRYOSPARC_LICENSE_ID", "lic")
    assert connection("em.example.org")["base_port"] == 39000 and connection("em.example.org")["license"] == "lic"
    import inspect

    from cryosparc.tools import CryoSPARC

    params = inspect.signature(CryoSPARC.__init__).parameters
    assert {"host", "base_port", "email", "password", "license"} <= set(params)


def test_the_diameter_comes_in_pixels_or_in_angstrom_over_the_exposures_pixel_size():
    from epick.runtime.errors import EpickError
    from epick.runtime.integrations.cryosparc_job import diameter_px

    exposures = dataset.Dataset.allocate(3, [("micrograph_blob/psize_A", "<f4")])
    exposures["micrograph_blob/psize_A"] = [0.75, 0.75, 0.8]
    assert diameter_px(exposures, None, None) is None
    assert diameter_px(exposures, 180.0, None) == 180.0
    assert diameter_px(exposures, None, 300.0) == pytest.approx(400.0)   # 300 A / 0.75 A/px (the median)
    blank = dataset.Dataset.allocate(2, [("micrograph_blob/psize_A", "<f4")])
    with pytest.raises(EpickError, match="record none"):
        diameter_px(blank, None, 300.0)
    args = build_parser().parse_args(["--project", "P3", "--workspace", "W2", "--exposures", "J12", "--model", "general",
                                      "--diameter-a", "280"])
    assert (args.diameter, args.diameter_a) == (None, 280.0)
    with pytest.raises(SystemExit) as stopped:   # the size is given once: a usage error
        build_parser().parse_args(["--project", "P3", "--workspace", "W2", "--exposures", "J12", "--model", "general",
                                   "--diameter", "180", "--diameter-a", "280"])
    assert stopped.value.code == 2


def test_the_size_note_reads_the_first_exposures_shape_and_their_pixel_size():
    from epick.runtime.integrations.cryosparc_job import exposure_pixel_size, exposure_shape

    exposures = dataset.Dataset.allocate(3, [("micrograph_blob/shape", "<u4", (2,)), ("micrograph_blob/psize_A", "<f4")])
    exposures["micrograph_blob/shape"] = [(4092, 5760)] * 3
    exposures["micrograph_blob/psize_A"] = [0.0, 0.83, 0.85]   # an unset one is left out
    assert exposure_shape(exposures) == (4092, 5760)
    assert exposure_pixel_size(exposures) == pytest.approx(0.84)
    assert exposure_shape(dataset.Dataset.allocate(2, [("micrograph_blob/psize_A", "<f4")])) is None
