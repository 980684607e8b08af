"""The MRNet model: shapes, batched equals one-by-one, and the pretrained-weights paths."""

from __future__ import annotations

import urllib.error

import pytest
import torch
from torch import nn
from torchvision.models import AlexNet_Weights, alexnet

from mrnet.data.transforms import preprocess
from mrnet.errors import MRNetError
from mrnet.models import ModelArgs, MRNet, build_model, memory_format


@pytest.mark.parametrize("slices", [1, 3, 17])
def test_one_logit_for_any_slice_count(slices):
    torch.manual_seed(0)
    net = MRNet().eval()
    with torch.inference_mode():
        out = net(torch.randn(slices, 3, 64, 64))
    assert out.shape == (1,)


def test_accepts_256_px_slices():
    with torch.inference_mode():
        assert MRNet().eval()(torch.randn(2, 3, 256, 256)).shape == (1,)


def test_batched_exams_equal_one_at_a_time():
    torch.manual_seed(0)
    net = MRNet().eval()
    exams = [torch.randn(s, 3, 64, 64) for s in (3, 5, 2)]
    with torch.inference_mode():
        single = torch.cat([net(x) for x in exams])
        batched = net.forward_exams(torch.cat(exams), [3, 5, 2])
    assert batched.shape == (3,)
    assert torch.allclose(single, batched, atol=1e-5)


def test_grey_input_equals_three_identical_channels_forward_and_backward():
    """The folded first convolution is the baseline's 3-channel model, gradients included."""
    torch.manual_seed(0)
    net = build_model(pretrained=False)
    grey = torch.randn(4, 1, 64, 64)
    results = []
    for x in (grey, grey.expand(-1, 3, -1, -1)):
        net.zero_grad()
        logit = net(x)
        logit.sum().backward()
        results.append((logit.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}))
    (logit_1, grads_1), (logit_3, grads_3) = results
    assert torch.allclose(logit_1, logit_3, atol=1e-5)
    for name in grads_3:
        assert torch.allclose(grads_1[name], grads_3[name], rtol=1e-4, atol=1e-6), name
    colour_grads = grads_1["features.0.weight"]  # (64, 3, 11, 11): every colour kernel gets the same update
    assert torch.equal(colour_grads[:, 0], colour_grads[:, 1]) and torch.equal(colour_grads[:, 1], colour_grads[:, 2])


def test_max_over_slices_ignores_slice_order():
    torch.manual_seed(0)
    net = MRNet().eval()
    x = torch.randn(4, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(net(x), net(x.flip(0)), atol=1e-6)


def test_features_are_torchvisions_alexnet_features():
    reference = alexnet(weights=None).features
    ours = MRNet().features
    # Same layers; the first convolution is a Conv2d subclass that also takes one grey channel.
    assert all(isinstance(a, type(b)) for a, b in zip(ours, reference, strict=True))
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(ours(x), reference(x))


def test_download_failure_gives_a_way_out(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(AlexNet_Weights.IMAGENET1K_V1.__class__, "get_state_dict", lambda self, *a, **k: offline())
    with pytest.raises(MRNetError) as err:
        build_model(pretrained=True)
    message = str(err.value)
    assert "--no-pretrained" in message and "alexnet-owt-7be5be79.pth" in message and "--weights" in message


@pytest.mark.slow  # reads the 244 MB AlexNet weights file the session writes
def test_local_weights_file_is_loaded(alexnet_weights):
    path, first_conv = alexnet_weights
    net = build_model(weights_path=str(path))
    assert torch.equal(net.features[0].weight, first_conv)


def test_bad_weights_files_are_named(tmp_path):
    with pytest.raises(MRNetError, match="not found"):
        build_model(weights_path=str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(MRNetError, match=r"junk.pth"):
        build_model(weights_path=str(tmp_path / "junk.pth"))
    torch.save({"fc.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(MRNetError, match="not a torchvision AlexNet"):
        build_model(weights_path=str(tmp_path / "other.pth"))


def test_from_scratch_init_is_seeded():
    torch.manual_seed(3)
    a = build_model(pretrained=False)
    torch.manual_seed(3)
    b = build_model(pretrained=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_from_scratch_convolutions_keep_the_signal_alive():
    """He init: each conv's weights have std sqrt(2 / fan_in), biases start at zero, and the
    per-slice features of different slices still differ five layers deep."""
    torch.manual_seed(0)
    model = build_model(pretrained=False)
    convolutions = [layer for layer in model.features if isinstance(layer, torch.nn.Conv2d)]
    assert len(convolutions) == 5
    for layer in convolutions:
        fan_in = layer.weight[0].numel()
        assert abs(layer.weight.std().item() / (2.0 / fan_in) ** 0.5 - 1.0) < 0.1
        assert torch.count_nonzero(layer.bias) == 0
    slices = torch.randn(8, 3, 64, 64)
    features = model.eval().slice_features(slices)  # (8, 256)
    assert features.std(dim=0).mean() > 0.1 * features.abs().mean()


def test_the_head_runs_in_fp32_under_autocast():
    """bf16 features, but the pool and the head in fp32: logits that do not round into ties (0.008 apart near 1.5)."""
    torch.manual_seed(0)
    model = MRNet(ModelArgs(pool="attention")).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(torch.rand(4, 1, 64, 64)).dtype == torch.float32
        assert model(torch.rand(6, 1, 64, 64), [2, 4]).dtype == torch.float32


def test_the_folded_first_convolution_keeps_a_channels_last_model_channels_last():
    """One grey channel reads as NCHW from its strides; the folded conv restrides it so conv1 runs channels_last."""
    torch.manual_seed(0)
    net = build_model(pretrained=False)
    grey = preprocess(torch.randint(0, 255, (4, 64, 64), dtype=torch.uint8))  # (4, 1, 64, 64), as training feeds it
    plain = net.features[0](grey)
    assert plain.is_contiguous()  # an NCHW model stays NCHW
    net = net.to(memory_format=memory_format(net))
    out = net.features[0](grey)
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    torch.testing.assert_close(out, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        out, nn.Conv2d.forward(net.features[0], grey.expand(-1, 3, -1, -1)), rtol=1e-5, atol=1e-5
    )
