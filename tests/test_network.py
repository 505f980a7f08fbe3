"""The detector: output contract, narrow variant, bilinear upsampling init, ONNX export."""
import numpy as np
import pytest
import torch

from epick.trainer.network import NetworkConfig, bilinear_upsampler, build_detector


def test_full_dla34_shapes_and_size():
    torch.manual_seed(0)
    net = build_detector(NetworkConfig()).eval()
    n_params = sum(p.numel() for p in net.parameters())
    assert 15e6 < n_params < 25e6  # DLA-34 + neck + 2 heads (CenterNet: ~20M with 3 heads)
    with torch.no_grad():
        heat, off = net(torch.rand(1, 1, 64, 96))
    assert heat.shape == (1, 1, 16, 24) and off.shape == (1, 2, 16, 24)
    assert net.output_names == ("heatmap", "offset")


def test_exact_parameter_counts():
    """Structural drift (a level, a channel, a head) changes these counts: DLA-34 + DLA-up/IDA-up
    neck + CenterNet heads at width 1.0 and at the narrow width 0.25."""
    def count(config):
        return sum(p.numel() for p in build_detector(config).parameters())

    assert count(NetworkConfig()) == 18_866_067
    assert count(NetworkConfig(with_size=True)) == 19_014_293
    assert count(NetworkConfig.narrow()) == 1_186_263


def test_narrow_variant_with_size_head():
    torch.manual_seed(0)
    net = build_detector(NetworkConfig.narrow(with_size=True)).eval()
    assert sum(p.numel() for p in net.parameters()) < 2e6
    x = torch.rand(2, 1, 128, 64)
    with torch.no_grad():
        out = net(x)
        feats = net.forward_features(x)
    assert [tuple(o.shape) for o in out] == [(2, 1, 32, 16), (2, 2, 32, 16), (2, 2, 32, 16)]
    assert feats.shape == (2, net.config.feature_channels, 32, 16)
    assert net.output_names == ("heatmap", "offset", "size")
    # heatmap prior: bias -2.19 of the last conv, sigmoid ~ 0.1
    assert net.heatmap[-1].bias.item() == pytest.approx(-2.19)


def test_config_round_trip():
    cfg = NetworkConfig.narrow(True)
    assert NetworkConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.channels == (4, 8, 16, 32, 64, 128)


def test_one_name_per_width_and_old_names_still_read():
    assert NetworkConfig().name == "dla34" and NetworkConfig.narrow().name == "dla34-w0.25"
    assert NetworkConfig(width=0.25).to_dict()["name"] == "dla34-w0.25"
    old = {"width": 0.25, "head_conv": 256, "with_size": False, "name": "dla34-narrow"}  # files before the rename
    assert NetworkConfig.from_dict(old) == NetworkConfig.narrow()
    with pytest.raises(ValueError, match="resnet"):
        NetworkConfig.from_dict({**old, "name": "resnet18"})
    with pytest.raises(TypeError):
        NetworkConfig.from_dict({**old, "depth": 3})


def test_bilinear_upsampler_matches_bilinear_interpolation_inside():
    up = bilinear_upsampler(1, 2)
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)  # a linear ramp
    with torch.no_grad():
        y = up(x)
    ref = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert y.shape == ref.shape == (1, 1, 8, 8)
    assert torch.allclose(y[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-5)


def test_onnx_export_standard_ops_matches_torch(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = build_detector(NetworkConfig.narrow(with_size=True)).eval()
    x = torch.rand(1, 1, 64, 64)
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (x,), str(path), input_names=["image"], output_names=list(net.output_names),
                      opset_version=17, dynamo=False)
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert ops <= {"Conv", "ConvTranspose", "Relu", "Add", "Concat", "MaxPool", "BatchNormalization", "Identity"}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": x.numpy()})
    with torch.no_grad():
        want = net(x)
    assert [o.name for o in sess.get_outputs()] == ["heatmap", "offset", "size"]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4)


def test_test_flips_average_the_heatmap_over_mirror_images_in_eval_mode_only():
    """test_flips 4: heatmap = mean of the logits of the image, its left-right, up-down and both
    mirror images, each flipped back; offsets from the plain pass; training passes never flip."""
    from dataclasses import replace

    torch.manual_seed(0)
    net = build_detector(NetworkConfig.narrow(with_size=True)).eval()
    x = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        plain = net(x)
        hm = [net(torch.flip(x, d))[0] if d else plain[0] for d in ((), (3,), (2,), (2, 3))]
        want = (hm[0] + torch.flip(hm[1], (3,)) + torch.flip(hm[2], (2,)) + torch.flip(hm[3], (2, 3))) / 4
        net.config = replace(net.config, test_flips=4)
        got = net(x)
        net.config = replace(net.config, test_flips=2)
        two = net(x)
    assert torch.allclose(got[0], want, atol=1e-5) and not torch.allclose(got[0], plain[0], atol=1e-4)
    assert torch.allclose(two[0], (hm[0] + torch.flip(hm[1], (3,))) / 2, atol=1e-5)
    for g, p in zip(got[1:], plain[1:]):
        assert torch.equal(g, p)
    # a left-right mirrored image gives the mirrored heatmap (the average is symmetric under flips)
    with torch.no_grad():
        mirrored = net(torch.flip(x, (3,)))[0]
    net.config = replace(net.config, test_flips=4)
    with torch.no_grad():
        assert torch.allclose(torch.flip(net(torch.flip(x, (3,)))[0], (3,)), got[0], atol=1e-5)
    assert not torch.allclose(torch.flip(mirrored, (3,)), plain[0], atol=1e-4)  # the plain network is not
    net.train()
    torch.manual_seed(1)
    a = net(x)[0]
    net.config = replace(net.config, test_flips=1)
    torch.manual_seed(1)
    assert torch.equal(net(x)[0], a)


def test_test_flips_in_the_config_file_form():
    """Stored only when not 1, so older model files (without the key) read as before; checked values."""
    assert "test_flips" not in NetworkConfig.narrow().to_dict()
    cfg = NetworkConfig(width=0.25, test_flips=4)
    assert cfg.to_dict()["test_flips"] == 4 and NetworkConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="test_flips"):
        NetworkConfig(test_flips=3)
