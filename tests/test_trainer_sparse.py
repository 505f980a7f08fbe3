"""Sparse annotation: with 70% of the labels removed, the sparse focal loss recalls more particles."""
import pytest
import torch

from epick.runtime.preprocess import PreprocessParams
from epick.trainer.data import load_dataset
from epick.trainer.modelfile import read_model_file
from epick.trainer.train import DatasetSpec, TrainConfig, train_model
from epick.trainer.validate import evaluate_samples
from test_trainer_common import KINDS, write_dataset


@pytest.mark.slow  # two 30-epoch trainings: about 2 x 50 s on one free core
def test_sparse_loss_recalls_more_than_plain_loss_with_70_percent_labels_missing(tmp_path):
    torch.set_num_threads(1)
    mics, stars = write_dataset(tmp_path / "train", "apo", 8, seed=1, keep_fraction=0.3)
    test = load_dataset(*write_dataset(tmp_path / "test", "apo", 4, seed=3), PreprocessParams(target_width=256),
                        dataset="apo", diameter=KINDS["apo"], progress=False)
    spec = DatasetSpec("apo", [mics], [stars], diameter=KINDS["apo"])
    recall = {}
    for sparse in (False, True):
        config = TrainConfig(epochs=30, sparse=sparse, crop=128, width=0.25, target_width=256, lr=2e-3,
                             progress=False, val_fraction=0.0, repeats=2)
        path, _ = train_model([spec], config, tmp_path / f"sparse_{sparse}.epick")
        net = read_model_file(path).network
        recall[sparse] = [evaluate_samples(net, test, threshold=t)["recall"] for t in (0.3, 0.5)]
    assert recall[True][0] > recall[False][0]
    assert sum(recall[True]) > sum(recall[False]) + 0.05
