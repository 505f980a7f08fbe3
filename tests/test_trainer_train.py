"""Training end to end on small simulated micrographs (narrow network, CPU, one thread).

Files go through the real path: MRC + STAR on disk -> readers -> preprocess -> training -> .epick.
"""

import pytest
import torch

from epick.runtime.model_card import describe_model, read_model_metadata
from epick.runtime.preprocess import PreprocessParams
from epick.trainer.data import load_dataset
from epick.trainer.modelfile import read_model_file
from epick.trainer.train import DatasetSpec, TrainConfig, fit, train_model
from epick.trainer.validate import evaluate_samples
from epick.trainer.network import NetworkConfig, build_detector
from test_trainer_common import KINDS, write_dataset, write_mixed_dataset

PARAMS = PreprocessParams(target_width=256)
OLD, NEW = "apo", "virus"  # particle kinds of test_trainer_common: learnt first, then added
# 4 random crops per micrograph per epoch (~70 Adam steps for OLD), lr / 10 only after epoch 10: enough
# steps on the new particle for fine-tuning to forget the old one.
FAST = dict(crop=128, width=0.25, target_width=256, lr=2e-3, progress=False, repeats=4, lr_steps=(10,))


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU is shared: one thread is faster than two fighting
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    """A model trained for ~20 s on OLD particles, and held-out OLD micrographs."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp(OLD)
    mics, stars = write_dataset(tmp / "train", OLD, 8, seed=1)
    test = load_dataset(*write_dataset(tmp / "test", OLD, 4, seed=3), PARAMS, dataset=OLD,
                        diameter=KINDS[OLD], progress=False)
    path, result = train_model([DatasetSpec(OLD, [mics], [stars], diameter=KINDS[OLD])],
                               TrainConfig(epochs=12, val_fraction=0.25, **FAST), tmp / "old.epick")
    return path, result, test, tmp


def test_trained_model_reaches_ap_on_held_out_micrographs(old_run):
    path, result, test, _ = old_run
    model = read_model_file(path)
    metrics = evaluate_samples(model.network, test)
    assert metrics["ap"] > 0.5
    assert len(result.log) == 12 and all("val_ap" in row and "heatmap" in row for row in result.log)
    best = max(r["val_ap"] for r in result.log)
    assert result.best_ap == pytest.approx(best)
    meta = model.metadata
    assert meta["object_type"] == "particle" and meta["preprocess"]["target_width"] == 256
    assert meta["particle_diameter"] == KINDS[OLD]
    (entry,) = meta["history"]
    assert entry["name"] == OLD and entry["mode"] == "joint" and entry["particles"] > 100
    assert 1 <= len(model.exemplars) <= 2 and sum(e.count for e in model.exemplars) > 0


def test_continual_learning_forgets_less_than_finetuning(old_run):
    base, _, test_old, tmp = old_run
    # the new sample's micrographs also carry unlabelled OLD particles, as grids of a second sample
    # often do: training on its labels alone teaches the network to ignore the old particle
    new = write_mixed_dataset(tmp / "new", NEW, OLD, 8, seed=2)
    before = evaluate_samples(read_model_file(base).network, test_old)["ap"]
    test_new = load_dataset(*write_dataset(tmp / "new_test", NEW, 3, seed=4), PARAMS, dataset=NEW,
                            diameter=KINDS[NEW], progress=False)
    spec = DatasetSpec(NEW, [new[0]], [new[1]], diameter=KINDS[NEW])
    ap, kept = {}, {}
    for mode in ("finetune", "continual"):
        path, result = train_model([spec], TrainConfig(mode=mode, epochs=10, val_fraction=0.0, **FAST),
                                   tmp / f"{mode}.epick", init_model=base)
        model = read_model_file(path)
        ap[mode] = (evaluate_samples(model.network, test_old)["ap"], evaluate_samples(model.network, test_new)["ap"])
        assert [h["name"] for h in model.metadata["history"]] == [OLD, NEW]
        assert model.metadata["history"][1]["mode"] == mode
        # what the run kept of OLD, on its exemplars, is reported and stored with the step
        kept[mode] = result.old_exemplar_ap[OLD]
        assert set(result.old_exemplar_ap) == {OLD} and kept[mode]["before"] > 0.5
        assert model.metadata["history"][1]["old_exemplar_ap"] == result.old_exemplar_ap
        card = "\n".join(describe_model(read_model_metadata(path)))   # `epick models PATH`
        assert f"2. {mode} on {NEW}" in card and f"{OLD} {kept[mode]['before']:.3f} -> " in card
        assert {e.dataset for e in model.exemplars} == {OLD, NEW}
    assert ap["finetune"][1] > 0.5 and ap["continual"][1] > 0.3  # both learned the new particle
    # continual learning keeps the old particle (the target: forgetting <= 0.03 AP) and forgets
    # less than fine-tuning (measured once with other background seeds: old AP 0.99 continual, 0.87 fine-tuned)
    assert before - ap["continual"][0] <= 0.03
    assert ap["continual"][0] > ap["finetune"][0] + 0.05
    assert kept["continual"]["before"] == kept["finetune"]["before"]   # the same model, the same exemplars
    assert kept["continual"]["after"] > kept["finetune"]["after"]     # the exemplars show the forgetting too


def test_continual_learning_of_a_dataset_the_model_already_holds(old_run, capsys):
    """Adding OLD again, its exemplar micrograph among the new ones and held out for validation: it is
    validated as new data (once), and the model keeps OLD's history and one exemplar set for it."""
    from epick.trainer.data import split_validation

    base, _, _, tmp = old_run
    exemplar_names = {e.name for e in read_model_file(base).exemplars}
    mics, stars = write_dataset(tmp / "again", OLD, 8, seed=1)   # the training micrographs of old_run
    samples = load_dataset(mics, stars, PARAMS, dataset=OLD, diameter=KINDS[OLD], progress=False)
    assert exemplar_names <= {s.name for s in samples}
    seed = next(s for s in range(50) if exemplar_names & {v.name for v in split_validation(samples, 0.5, s)[1]})
    path, result = train_model([DatasetSpec(OLD, [mics], [stars], diameter=KINDS[OLD])],
                               TrainConfig(mode="continual", epochs=1, val_fraction=0.5, seed=seed, **FAST),
                               tmp / "again.epick", init_model=base)
    assert "train as new data" in capsys.readouterr().err
    model = read_model_file(path)
    assert result.best_ap is not None and [h["name"] for h in model.metadata["history"]] == [OLD, OLD]
    assert {e.dataset for e in model.exemplars} == {OLD} and sum(e.count for e in model.exemplars) > 0


def test_training_is_deterministic_for_a_seed(old_run):
    _, _, samples, _ = old_run
    states = []
    for _ in range(2):
        torch.manual_seed(5)
        net = build_detector(NetworkConfig.narrow())
        fit(net, samples, [], TrainConfig(epochs=1, seed=5, batch_size=2, **FAST))
        states.append(net.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


def test_cli_trains_and_resumes(tmp_path, old_run, capsys):
    from epick.runtime.cli import main

    mics, stars = write_dataset(tmp_path / "d", "apo", 3, seed=7)
    out = tmp_path / "cli.epick"
    args = ["train", "--data", str(mics), str(stars), "apos", "--diameter", "16", "-o", str(out), "--epochs", "1",
            "--crop", "128", "--width", "0.25", "--target-width", "256", "--val-fraction", "0", "--quiet"]
    assert main(args + ["--keep-checkpoint"]) == 0
    ckpt = out.with_name(out.name + ".ckpt")
    assert out.is_file() and ckpt.is_file()
    two_epochs = [("2" if a == "1" else a) for a in args] + ["--resume"]  # --epochs 1 -> 2
    assert main(two_epochs) == 0
    log = read_model_file(out).metadata["training"]["log"]
    assert [row["epoch"] for row in log] == [1, 2]  # epoch 1 came from the checkpoint
    assert not ckpt.exists()        # a finished run removes its checkpoint unless --keep-checkpoint
    # fine-tuning from it on another dataset says what it kept of the old one
    capsys.readouterr()
    tuned = tmp_path / "tuned.epick"
    assert main(["train", "--mode", "finetune", "--model", str(out), "--data", str(mics), str(stars), "more",
                 "--diameter", "16", "-o", str(tuned), "--epochs", "1", "--crop", "128", "--val-fraction", "0",
                 "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "old datasets, AP on their exemplars before -> after" in said and "apos " in said
    # a finetune without a model is refused with a one-line error (exit 2)
    assert main(["train", "--mode", "finetune", "--data", str(mics), str(stars), "-o", str(out)]) == 2


def test_mismatched_labels_are_a_clear_error(tmp_path, capsys):
    from epick.runtime.cli import main

    mics, stars = write_dataset(tmp_path / "d", "apo", 2, seed=8)
    (stars / "apo_8_000.star").rename(stars / "other_name.star")
    code = main(["train", "--data", str(mics), str(stars), "--diameter", "16", "-o", str(tmp_path / "x.epick")])
    err = capsys.readouterr().err
    assert code == 2 and "other_name" in err and "not among the micrographs" in err


def test_resume_without_a_checkpoint_says_it_starts_from_scratch(old_run, tmp_path, capsys):
    _, _, samples, _ = old_run
    net = build_detector(NetworkConfig.narrow())
    fit(net, samples[:1], [], TrainConfig(epochs=1, seed=5, batch_size=2, **{**FAST, "repeats": 1}),
        checkpoint=tmp_path / "none.ckpt", resume=True)
    err = capsys.readouterr().err
    assert "no checkpoint" in err and "none.ckpt" in err


def test_device_auto_falls_back_to_cpu_and_cuda_without_gpu_is_a_clear_error():
    from epick.runtime.errors import EpickError
    from epick.trainer.train import _device

    assert _device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(EpickError, match="--device cpu"):
            _device("cuda")


def test_ema_keeps_the_weight_average_and_resumes_it(old_run, tmp_path):
    """--ema: the kept weights are the average (not the last raw weights), the checkpoint carries
    it, and 1 epoch + resume 1 epoch gives the same model as 2 epochs in one go."""
    _, _, samples, _ = old_run
    config = TrainConfig(epochs=2, seed=5, batch_size=2, ema=0.9, **{**FAST, "repeats": 2})
    results = []
    for split in (False, True):
        torch.manual_seed(5)
        net = build_detector(NetworkConfig.narrow())
        ckpt = tmp_path / f"run{split}.ckpt"
        if split:
            fit(net, samples[:2], samples[2:], TrainConfig(**{**config.__dict__, "epochs": 1}), checkpoint=ckpt)
            torch.manual_seed(5)
            net = build_detector(NetworkConfig.narrow())
        results.append((fit(net, samples[:2], samples[2:], config, checkpoint=ckpt, resume=split), net))
    (straight, raw), (resumed, _) = results
    for k, v in straight.best_state.items():
        assert torch.equal(v, resumed.best_state[k]), k
    assert any(not torch.equal(v, raw.state_dict()[k].cpu()) for k, v in straight.best_state.items()
               if v.dtype.is_floating_point)
    from epick.trainer.checkpoint import load_checkpoint
    ck = load_checkpoint(tmp_path / "runTrue.ckpt")
    assert ck.ema and ck.ema_updates > 0
    with pytest.raises(Exception, match="ema"):
        TrainConfig(ema=1.0)


def test_kept_message_names_each_old_dataset_and_a_forgetting_fine_tune():
    from epick.trainer.cli import kept_message

    assert kept_message({}, "finetune") == []
    old = {"betagal": {"before": 0.82, "after": 0.70}, "sim": {"before": 0.96, "after": None}}
    lines = kept_message(old, "finetune")
    assert "betagal 0.820 -> 0.700" in lines[0] and "sim 0.960 -> n/a" in lines[0]
    assert len(lines) == 2 and "of betagal;" in lines[1] and "--mode continual" in lines[1]
    assert len(kept_message(old, "continual")) == 1                      # no advice after continual learning
    assert len(kept_message({"betagal": {"before": 0.82, "after": 0.80}}, "finetune")) == 1   # kept: no advice
