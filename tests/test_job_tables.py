"""One table per picking job (particles.star with rlnMicrographName, Topaz's table, cryoSPARC's
particles.cs via cryosparc-tools), exposures' uids, CSDAT files, and micrographs_ctf.star as input."""
from __future__ import annotations

import numpy as np
import pytest

from _models import blob_micrograph, make_onnx
from epick.runtime.cli import main
from epick.runtime.io.coordinates import detect_format, read_picks, write_picks
from epick.runtime.io.micrograph import write_mrc
from epick.runtime.picks import Picks

starfile = pytest.importorskip("starfile")
dataset = pytest.importorskip("cryosparc.dataset")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_onnx(tmp_path_factory.mktemp("model") / "blob.onnx", target_width=256, diameter=40.0)


@pytest.fixture()
def mics(tmp_path):
    folder = tmp_path / "mics"
    folder.mkdir()
    for i in range(2):
        write_mrc(folder / f"mic_A{i}.mrc", blob_micrograph((384, 448), n=8, seed=i)[0], pixel_size=1.1)
    return folder


def _per_micrograph(out):
    return {p.key: p for f in sorted(out.glob("*_autopick.star")) for p in read_picks(f)}


def test_job_tables_hold_every_micrograph_and_the_readers_agree(model, mics, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert main(["pick", "mics", "--model", str(model), "--out", str(out), "--format", "jobstar,topaz,jobcs",
                 "--threshold", "0.5", "--quiet"]) == 0
    single = _per_micrograph(out)                          # star is written with the job tables
    assert sorted(single) == ["mic_A0", "mic_A1"] and all(len(p) for p in single.values())
    # particles.star: rlnMicrographName on every row, read by starfile and by epick
    table = starfile.read(out / "particles.star")
    assert set(table["rlnMicrographName"]) == {"mics/mic_A0.mrc", "mics/mic_A1.mrc"}
    for picks in read_picks(out / "particles.star"):
        np.testing.assert_allclose(picks.x, single[picks.key].x, atol=1e-5)
    # Topaz's table
    for picks in read_picks(out / "picks_topaz.txt"):
        np.testing.assert_allclose(picks.y, single[picks.key].y, atol=1e-9)
    # cryoSPARC: cryosparc-tools reads what epick wrote
    cs = dataset.Dataset.load(out / "particles.cs")
    assert len(cs) == sum(len(p) for p in single.values())
    assert set(cs.fields()) >= {"uid", "location/micrograph_uid", "location/exp_group_id", "location/micrograph_path",
                                "location/micrograph_shape", "location/micrograph_psize_A",
                                "location/center_x_frac", "location/center_y_frac", "pick_stats/ncc_score"}
    np.testing.assert_allclose(cs["location/micrograph_psize_A"], 1.1, rtol=1e-6)
    assert set(np.asarray(cs["location/exp_group_id"]).tolist()) == {1}
    assert len(set(np.asarray(cs["location/micrograph_uid"]).tolist())) == 2   # one uid per micrograph
    for picks in read_picks(out / "particles.cs"):
        assert picks.shape == (384, 448)
        np.testing.assert_allclose(picks.x, single[picks.key].x, atol=1e-3)


def test_resumed_job_tables_include_earlier_micrographs(model, mics, tmp_path):
    out = tmp_path / "out"
    argv = ["pick", str(mics), "--model", str(model), "--out", str(out), "--format", "star,jobstar,topaz",
            "--threshold", "0.5", "--quiet", "--skip-existing"]
    assert main(argv) == 0
    write_mrc(mics / "mic_A2.mrc", blob_micrograph((384, 448), n=8, seed=7)[0])
    assert main(argv) == 0                                  # picks only mic_A2
    assert {p.key for p in read_picks(out / "particles.star")} == {"mic_A0", "mic_A1", "mic_A2"}
    assert {p.key for p in read_picks(out / "picks_topaz.txt")} == {"mic_A0", "mic_A1", "mic_A2"}


def _exposures(path, names):
    """An exposures .cs laid out as cryoSPARC's Patch Motion Correction writes it."""
    exp = dataset.Dataset.allocate(len(names), [("micrograph_blob/path", "O"), ("micrograph_blob/shape", "<u4", (2,)),
                                                ("micrograph_blob/psize_A", "<f4"), ("mscope_params/exp_group_id", "<u4")])
    exp["micrograph_blob/path"] = names
    exp["micrograph_blob/shape"] = [(384, 448)] * len(names)
    exp["micrograph_blob/psize_A"] = 0.83
    exp["mscope_params/exp_group_id"] = [3] * len(names)
    exp.save(path)
    return exp


def test_particles_take_uid_path_and_group_of_the_exposures(model, mics, tmp_path):
    names = [f"J3/motioncorrected/01234567890123456789_mic_A{i}_patch_aligned_doseweighted.mrc" for i in range(2)]
    exp = _exposures(tmp_path / "J3_exposures_accepted.cs", names)
    out = tmp_path / "out"
    assert main(["pick", str(mics), "--model", str(model), "--out", str(out), "--format", "jobcs",
                 "--exposures", str(tmp_path / "J3_exposures_accepted.cs"), "--threshold", "0.5", "--quiet"]) == 0
    cs = dataset.Dataset.load(out / "particles.cs")
    uid_of = dict(zip(names, np.asarray(exp["uid"]).tolist()))
    paths = [p.decode() if isinstance(p, bytes) else p for p in cs["location/micrograph_path"]]
    assert set(paths) == set(names)                          # paths as cryoSPARC stores them
    assert [uid_of[p] for p in paths] == np.asarray(cs["location/micrograph_uid"]).tolist()
    assert set(np.asarray(cs["location/exp_group_id"]).tolist()) == {3}
    np.testing.assert_allclose(cs["location/micrograph_psize_A"], 0.83, rtol=1e-6)


def test_unmatched_exposure_is_one_error(model, mics, tmp_path, capsys):
    _exposures(tmp_path / "exp.cs", ["J3/motioncorrected/99_other_patch_aligned_doseweighted.mrc"])
    rc = main(["pick", str(mics), "--model", str(model), "--out", str(tmp_path / "o"), "--format", "jobcs",
               "--exposures", str(tmp_path / "exp.cs"), "--quiet"])
    assert rc == 2 and "has no exposure for micrograph" in capsys.readouterr().err


def test_csdat_files_are_read_and_written(tmp_path):
    picks = [Picks(f"m{i}.mrc", [10.0, 200.5], [30.0, 40.25], score=[0.5, 0.9], shape=(512, 512)) for i in range(2)]
    from epick.runtime.io.cryosparc import write_cs

    path = write_cs(picks, tmp_path / "particles.cs", cs_format="csdat")
    assert path.read_bytes()[:6] == b"\x95CSDAT" and detect_format(path) == "cs"
    back = read_picks(path)
    assert [b.micrograph for b in back] == ["m0.mrc", "m1.mrc"]
    np.testing.assert_allclose(back[1].x, [10.0, 200.5], atol=1e-3)
    assert len(dataset.Dataset.load(path)) == 4
    numpy_path = write_picks(picks, tmp_path / "numpy.cs")
    assert numpy_path.read_bytes()[:6] == b"\x93NUMPY"
    assert np.load(numpy_path, allow_pickle=False)["location/micrograph_path"].dtype.kind == "S"


def test_pick_reads_a_relion_micrograph_list(model, tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "MotionCorr/job002/Movies").mkdir(parents=True)
    (project / "CtfFind/job003").mkdir(parents=True)
    for i in range(2):
        write_mrc(project / f"MotionCorr/job002/Movies/m{i}.mrc", blob_micrograph((256, 320), n=5, seed=i)[0])
    (project / "CtfFind/job003/micrographs_ctf.star").write_text(
        "data_optics\nloop_\n_rlnOpticsGroup #1\n_rlnMicrographPixelSize #2\n1 1.5\n\n"
        "data_micrographs\nloop_\n_rlnMicrographName #1\n_rlnOpticsGroup #2\n"
        "MotionCorr/job002/Movies/m0.mrc 1\nMotionCorr/job002/Movies/m1.mrc 1\n")
    monkeypatch.chdir(tmp_path)                              # not the project: paths resolve from the STAR
    out = tmp_path / "out"
    assert main(["pick", "project/CtfFind/job003/micrographs_ctf.star", "--model", str(model), "--out", str(out),
                 "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*_autopick.star")) == ["m0_autopick.star", "m1_autopick.star"]


def test_box_size_is_its_own_option(model, mics, tmp_path):
    out = tmp_path / "out"
    assert main(["pick", str(mics), "--model", str(model), "--out", str(out), "--format", "star,box",
                 "--diameter", "40", "--box-size", "64", "--threshold", "0.5", "--quiet"]) == 0
    rows = [ln.split("\t") for ln in (out / "mic_A0.box").read_text().splitlines()]
    assert rows and all(r[2] == r[3] == "64" for r in rows)
    [star] = read_picks(out / "mic_A0_autopick.star")
    assert star.diameter == 40.0                               # the particle diameter, not the box
    np.testing.assert_allclose([int(r[0]) + 32 for r in rows], star.x, atol=0.5)
    assert main(["convert", str(out), "--to", "box", "--out", str(tmp_path / "b"), "--box-size", "100"]) == 0
    assert {ln.split("\t")[2] for ln in (tmp_path / "b/mic_A0.box").read_text().splitlines()} == {"100"}


def test_shards_then_merge_index_write_the_job_tables(model, mics, tmp_path):
    write_mrc(mics / "mic_A2.mrc", blob_micrograph((384, 448), n=8, seed=9)[0])
    out = tmp_path / "out"
    for shard in ("0/2", "1/2"):
        assert main(["pick", str(mics), "--model", str(model), "--out", str(out), "--format", "jobstar,topaz",
                     "--threshold", "0.5", "--quiet", "--shard", shard]) == 0
    assert not (out / "particles.star").exists()              # written once, by the merge
    assert main(["merge-index", str(out)]) == 0
    assert {p.key for p in read_picks(out / "particles.star")} == {"mic_A0", "mic_A1", "mic_A2"}
    assert {p.key for p in read_picks(out / "picks_topaz.txt")} == {"mic_A0", "mic_A1", "mic_A2"}
