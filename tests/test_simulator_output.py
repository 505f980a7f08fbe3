"""`epick simulate`: files on disk read back through the runtime readers, manifests, suites."""
from __future__ import annotations

import json

import numpy as np

from epick.runtime.cli import main
from epick.runtime.io.coordinates import read_picks
from epick.runtime.io.micrograph import read_micrograph
from epick.simulator import simulate_micrograph
from epick.simulator.output import write_simulated


def test_written_mrc_and_star_round_trip(tmp_path):
    sim = simulate_micrograph((256, 300), "apoferritin", seed=4)
    row = write_simulated(sim, tmp_path)
    mic = read_micrograph(tmp_path / row["micrograph"])
    assert mic.data.shape == (256, 300)
    assert np.array_equal(mic.data, sim.image)
    assert abs(mic.pixel_size - sim.params["pixel_size_a"]) < 1e-3
    (picks,) = read_picks(tmp_path / row["coordinates"])
    assert np.allclose(picks.x, sim.truth.x) and np.allclose(picks.y, sim.truth.y)


def test_vesicle_and_fiber_star_keep_radius_and_tube_ids(tmp_path):
    ves = simulate_micrograph((256, 256), object="vesicle", seed=1)
    fib = simulate_micrograph((256, 256), object="fiber", seed=1, n_particles=2)
    (pv,) = read_picks(tmp_path / write_simulated(ves, tmp_path)["coordinates"])
    (pf,) = read_picks(tmp_path / write_simulated(fib, tmp_path)["coordinates"])
    assert np.allclose(pv.radius, ves.truth.radius, atol=1e-3)
    assert np.array_equal(pf.tube_id, fib.truth.tube_id)
    assert np.allclose(pf.x, fib.truth.x, atol=1e-3)


def test_cli_micrographs_writes_manifest_and_is_deterministic(tmp_path):
    for folder in ("a", "b"):
        rc = main(["simulate", "micrographs", str(tmp_path / folder), "--type", "small", "--n", "2",
                   "--size", "320x256", "--seed", "7"])
        assert rc == 0
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["particle"] == "small" and len(manifest["micrographs"]) == 2
    assert manifest["micrographs"][1]["params"]["seed"] == 8
    assert manifest["diameter_px"] > 0
    for row in manifest["micrographs"]:
        # the MRC header's label carries mrcfile's creation time: compare the data block after it
        a = (tmp_path / "a" / row["micrograph"]).read_bytes()
        b = (tmp_path / "b" / row["micrograph"]).read_bytes()
        assert len(a) == len(b) == 1024 + 256 * 320 * 4
        assert a[1024:] == b[1024:]
        star = row["coordinates"]
        assert (tmp_path / "a" / star).read_bytes() == (tmp_path / "b" / star).read_bytes()
        assert read_micrograph(tmp_path / "a" / row["micrograph"]).data.shape == (256, 320)


def test_suite_continual10_layout(tmp_path):
    rc = main(["simulate", "suite", "continual10", str(tmp_path), "--size", "256", "--train", "1",
               "--test", "1"])
    assert rc == 0
    suite = json.loads((tmp_path / "suite.json").read_text())
    objects = [d["object"] for d in suite["datasets"]]
    assert objects.count("particle") == 10 and "vesicle" in objects and "fiber" in objects
    particles = set()
    for d in suite["datasets"]:
        man = json.loads((tmp_path / d["manifest"]).read_text())
        assert [r["split"] for r in man["micrographs"]] == ["train", "test"]
        for r in man["micrographs"]:
            assert (tmp_path / d["dataset"] / r["micrograph"]).is_file()
            assert (tmp_path / d["dataset"] / r["coordinates"]).is_file()
        particles.add(man["particle"])
    assert len(particles) == 12
    # --only writes the same data as the full suite (seeds follow the dataset's place in the suite)
    assert main(["simulate", "suite", "continual10", str(tmp_path / "only"), "--size", "256", "--train", "1",
                 "--test", "1", "--only", "fiber"]) == 0
    full = (tmp_path / "fiber" / "test" / "fiber_001.star").read_bytes()
    assert (tmp_path / "only" / "fiber" / "test" / "fiber_001.star").read_bytes() == full
    assert main(["simulate", "suite", "continual10", str(tmp_path / "bad"), "--only", "nope"]) == 2


def test_simulate_list_says_how_to_provide_the_atomic_models(tmp_path):
    """Without a folder of atomic models, `epick simulate list` names the option and the variable
    instead of an error class; with --atomic-models the pdb-* types get their diameters."""
    import os
    import subprocess
    import sys

    from conftest import shared_data_dir

    env = {k: v for k, v in os.environ.items() if k not in ("EPICK_ATOMIC_MODELS", "EPICK_SHARED_DATA")}
    code = "import sys; from epick.runtime.cli import main; sys.exit(main(['simulate', *sys.argv[1:], 'list']))"
    run = lambda *a: subprocess.run([sys.executable, "-c", code, *a], env=env, capture_output=True,  # noqa: E731
                                    text=True, timeout=120, cwd=tmp_path)
    bare = run()
    assert bare.returncode == 0, bare.stderr
    line = next(x for x in bare.stdout.splitlines() if x.startswith("pdb-6z6u"))
    assert "?" in line and "Problem" not in bare.stdout
    assert "--atomic-models DIR" in bare.stdout and "EPICK_ATOMIC_MODELS=DIR" in bare.stdout
    given = run("--atomic-models", str(shared_data_dir() / "atomic_models"))
    line = next(x for x in given.stdout.splitlines() if x.startswith("pdb-6z6u"))
    assert "nm" in line and "kDa" in line and "EPICK_ATOMIC_MODELS" not in given.stdout
