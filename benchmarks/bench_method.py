"""The fixed, cheap before/after protocol for changes to the model or the training (issue 16).

One run: simulate a fixed, varied training set (parametric particle types, seed fixed), train the
narrow network (width 0.25) for a fixed number of optimisation steps with the project's trainer
(``fit``, no validation: the last weights are scored, so epoch selection adds no noise), then score
it on REAL micrographs it never saw with the project's evaluation (box IoU >= 0.5):

- the 14 EMPIAR-10017 beta-galactosidase micrographs (``../shared/data/empiar10017_betagal``),
- the 10 EMPIAR-10947 micrographs (``../shared/data/empiar10947``).

Every image, simulated or real, is resampled so that the particle diameter spans ``--particle-px``
network pixels (the particle-size mode; the diameters of the real sets are the ones in their STAR
files), so the figure measures what the network learned, not a scale mismatch.

Reports AP, AR and the best F1 over score thresholds per real set, and writes the JSON to
``bench_results/method-<tag>-<stamp>.json``. Usage::

    python benchmarks/bench_method.py --tag baseline [--steps 120] [--particle-px 24]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tools/ beside the packages
from _report import Report  # noqa: E402

SIM_TYPES = ("ribosome", "proteasome", "apoferritin", "toxin", "virus", "betagal", "small", "chaperonin",
             "spike", "dumbbell", "ring", "cage", "prolate", "lshape")


def simulated_training_set(n: int, seed: int, particle_px: float, size: int = 768):
    """The protocol's fixed training set: ``n`` simulated micrographs (types cycled, diameters
    uniform in 36-96 px, density and SNR drawn), preprocessed in the particle-size mode, as Samples."""
    from epick.runtime.preprocess import PreprocessParams, preprocess
    from epick.simulator import simulate_micrograph
    from epick.simulator.particles import particle_diameter_a
    from epick.trainer.data import Sample

    params = PreprocessParams(particle_px=particle_px)
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        kind = SIM_TYPES[i % len(SIM_TYPES)]
        d_px = float(rng.uniform(36, 96))
        px = particle_diameter_a(kind) / d_px
        sim = simulate_micrograph((size, size), kind, pixel_size=px, seed=seed * 1000 + i,
                                  density=float(rng.uniform(0.08, 0.4)), snr=float(rng.uniform(0.04, 0.12)))
        d = float(sim.params["diameter_px"])
        u8, tr = preprocess(sim.image, params.with_diameter(d))
        u, v = tr.to_network(sim.truth.x, sim.truth.y)
        samples.append(Sample(f"sim_{i:03d}", "sim", u8, np.stack([u, v], 1), diameter=d / tr.scale_x))
    return samples


def main(argv=None) -> int:
    """Run the protocol once; print the table, write the JSON."""
    import torch

    from epick.runtime.preprocess import PreprocessParams
    from tools.general_data import REAL_SETS, real_samples, score_samples
    from epick.trainer.network import NetworkConfig, build_detector
    from epick.trainer.train import TrainConfig, fit

    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--tag", required=True, help="name of this measurement (e.g. baseline, gaussian-radius)")
    ap.add_argument("--steps", type=int, default=120, help="optimisation steps (batch 4)")
    ap.add_argument("--n-sim", type=int, default=24, help="simulated training micrographs")
    ap.add_argument("--particle-px", type=float, default=24.0, help="particle diameter in network pixels")
    ap.add_argument("--crop", type=int, default=192, help="training crop (network px)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", type=Path, help="also save the trained weights (safetensors state dict)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    train = simulated_training_set(args.n_sim, args.seed, args.particle_px)
    size_mode = PreprocessParams(particle_px=args.particle_px)
    real = {name: real_samples(name, size_mode) for name in REAL_SETS}
    t_data = time.perf_counter() - t0
    batches_per_epoch = int(np.ceil(len(train) / 4))
    epochs = max(1, int(np.ceil(args.steps / batches_per_epoch)))
    config = TrainConfig(mode="joint", epochs=epochs, batch_size=4, lr=args.lr, crop=args.crop, repeats=1,
                         val_fraction=0.0, seed=args.seed, width=0.25, progress=False)
    torch.manual_seed(args.seed)
    network = build_detector(NetworkConfig.narrow())
    t0 = time.perf_counter()
    result = fit(network, train, [], config)
    t_train = time.perf_counter() - t0
    network.load_state_dict(result.best_state)
    network.eval()
    if args.save:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(args.save))
    t0 = time.perf_counter()
    scores = {name: score_samples(network, samples) for name, samples in real.items()}
    t_eval = time.perf_counter() - t0

    report = Report(f"method-{args.tag}", params={**{k: (str(v) if isinstance(v, Path) else v)
                                                        for k, v in vars(args).items()},
                                                     "epochs": epochs, "batches_per_epoch": batches_per_epoch})
    report.add("simulate + read data", t_data)
    report.add("train", t_train, log=result.log)
    report.add("score real sets", t_eval, scores=scores)
    print(f"\n{'real set':<14} {'AP':>6} {'AR':>6} {'best F1':>8} (at t)")
    for name, s in scores.items():
        print(f"{name:<14} {s['ap']:6.3f} {s['ar']:6.3f} {s['best_f1']:8.3f} ({s['best_threshold']:g})")
    report.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
