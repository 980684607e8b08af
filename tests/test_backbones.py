"""The backbone registry: every backbone builds, folds the grey channel exactly, trains a step, loads weights
files, says what to do when a download fails, and is rebuilt from a checkpoint's model_args."""

from __future__ import annotations

import subprocess
import sys
import urllib.error

import numpy as np
import pytest
import torch
from torchvision.models._api import WeightsEnum

from mrnet.errors import MRNetError
from mrnet.models import BACKBONES, BN_MODES, POOLS, ModelArgs, MRNet, VolumeNet, build_model, model_for_inference
from mrnet.models.backbones import FoldedConv2d, FoldedConv3d
from mrnet.names import BACKBONE_NAMES, BN_NAMES, POOL_NAMES, VOLUME_BACKBONES
from mrnet.training.engine import train_one_epoch

SMALL = ModelArgs(depth=4)  # 3-D backbone: 4 resampled slices keep it quick

# Backbones of over 20 M parameters: the checks that build them run in the slow tier (make test), the others in both.
LARGE = {"resnet34", "r3d_18"}
EVERY_BACKBONE = [pytest.param(name, marks=pytest.mark.slow) if name in LARGE else name for name in BACKBONES]


def args_for(name: str, **changes) -> ModelArgs:
    return ModelArgs(**{**SMALL.__dict__, "backbone": name, **changes})


def test_the_names_the_options_offer_are_the_model_registries_keys():
    assert tuple(BACKBONES) == BACKBONE_NAMES
    assert tuple(n for n, b in BACKBONES.items() if b.volumetric) == VOLUME_BACKBONES
    assert tuple(POOLS) == POOL_NAMES
    assert BN_MODES == BN_NAMES


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKBONES))
def test_grey_input_equals_three_identical_channels_forward_and_backward(name):
    """The folded first convolution is the 3-channel model, logits and every gradient included.

    In float64: deep BatchNorm networks amplify float32 rounding (the sum over colour kernels
    rounds differently from three separate products) beyond any tolerance that would still
    catch a real difference.
    """
    torch.manual_seed(0)
    model = build_model(pretrained=False, args=args_for(name)).double()
    first = next(m for m in model.features.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)))
    assert isinstance(first, (FoldedConv2d, FoldedConv3d))
    model.train()
    grey = torch.randn(5, 1, 64, 64, dtype=torch.float64)
    results = []
    for x in (grey, grey.expand(-1, 3, -1, -1)):
        model.zero_grad()
        torch.manual_seed(1)  # the same stochastic-depth draws (EfficientNet) in both passes
        logits = model(x, [2, 3])  # (2,)
        logits.sum().backward()
        results.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (logits_1, grads_1), (logits_3, grads_3) = results
    torch.testing.assert_close(logits_1, logits_3, rtol=1e-9, atol=1e-9)
    for parameter, grad in grads_3.items():
        torch.testing.assert_close(grads_1[parameter], grad, rtol=1e-7, atol=1e-9, msg=parameter)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_trains_one_step(name):
    torch.manual_seed(0)
    model = build_model(pretrained=False, args=args_for(name, outputs=3))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    series = [rng.integers(0, 255, size=(s, 64, 64), dtype=np.uint8) for s in (2, 3)]
    labels = np.array([[1, 0, 1], [0, 1, 0]])
    stats = train_one_epoch(
        model, optimizer, series, labels, [0, 1], None, np.ones(3), torch.device("cpu"), exams_per_step=2
    )
    assert np.isfinite(stats.train_loss)
    assert not torch.equal(before["classifier.weight"], model.classifier.weight)
    feature_params = [n for n in before if n.startswith("features.")]
    assert any(not torch.equal(before[n], dict(model.named_parameters())[n]) for n in feature_params)


@pytest.mark.parametrize("name", EVERY_BACKBONE)
def test_download_failure_gives_a_way_out(name, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(MRNetError) as err:
        build_model(pretrained=True, args=args_for(name))
    message = str(err.value)
    assert "--no-pretrained" in message and "--weights" in message and ".pth" in message


@pytest.mark.slow  # writes and reads torchvision weights files of up to 244 MB
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_a_torchvision_weights_file_is_loaded(name, tmp_path, alexnet_weights):
    import torchvision.models

    torch.manual_seed(1)
    reference = getattr(torchvision.models, name)(weights=None)
    torch.save(reference.state_dict(), tmp_path / "weights.pth")
    model = build_model(weights_path=str(tmp_path / "weights.pth"), args=args_for(name))
    key = "conv1.weight" if name.startswith("resnet") else "0.0.weight"
    expected = reference.state_dict()[key if name.startswith("resnet") else "features." + key]
    assert torch.equal(model.features.state_dict()[key], expected)
    with pytest.raises(MRNetError, match="not a torchvision"):
        build_model(weights_path=str(alexnet_weights[0]), args=args_for(name))  # another network's weights


@pytest.mark.parametrize("name", EVERY_BACKBONE)
def test_rebuilt_from_model_args(name):
    torch.manual_seed(0)
    model = build_model(pretrained=False, args=args_for(name, pool="max", outputs=3)).eval()
    rebuilt = model_for_inference(model.state_dict(), torch.device("cpu"), model.model_args())
    assert isinstance(rebuilt, VolumeNet if BACKBONES[name].volumetric else MRNet)
    x = torch.randn(4, 1, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(model(x, [1, 3]), rebuilt(x, [1, 3]), rtol=1e-4, atol=1e-5)


def test_checkpoints_without_the_new_model_args_are_alexnet_max_one_output():
    torch.manual_seed(0)
    old = MRNet().eval()
    for saved in (None, {"features": 256}):
        rebuilt = model_for_inference(old.state_dict(), torch.device("cpu"), saved)
        assert rebuilt.args == ModelArgs()
        x = torch.randn(3, 1, 64, 64)
        with torch.inference_mode():
            torch.testing.assert_close(old(x), rebuilt(x))  # channels_last: rounding only


def test_frozen_batchnorm_keeps_running_statistics_while_training():
    torch.manual_seed(0)
    model = build_model(pretrained=False, args=args_for("resnet18", bn="frozen")).train()
    bn = model.features.bn1
    assert not bn.training and model.features.conv1.training
    before = bn.running_mean.clone()
    model(torch.randn(3, 1, 64, 64)).sum().backward()
    assert torch.equal(bn.running_mean, before)
    assert bn.weight.grad is not None  # the affine part still learns


@pytest.mark.slow
def test_alexnet_needs_no_torchvision_import():
    """torchvision's model zoo takes about 1.5 s to import; the paper's model and --help do without it."""
    code = (
        "import sys, torch; from mrnet.models import build_model, model_for_inference; "
        "m = build_model(pretrained=False); model_for_inference(m.state_dict(), torch.device('cpu')); "
        "import mrnet.cli.train_all as t; t.get_args_parser(); print('torchvision' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_convolution_trains_under_cpu_bf16_with_fp32s_weight_gradient(name):
    """Layer by layer, on the inputs and upstream gradients a real step gives it: the weight gradient
    under CPU bf16 autocast is fp32's to bf16's precision (about 0.4 % of its largest entry here).

    Per layer, because through a whole deep network bf16 rounding compounds (ResNet-34's first
    convolution points only about 0.7 of the way fp32's does) and would hide a broken kernel;
    this is how R3D-18's convolutions over a depth of 2 were found wrong (see models/volume.py).
    """
    torch.manual_seed(0)
    model = build_model(pretrained=False, args=args_for(name)).train()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.bfloat16().float())  # operands bf16 holds exactly: only the kernels' arithmetic differs
    convs = {n: m for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))}
    seen: dict[str, dict[str, torch.Tensor]] = {}

    def keep(name, inputs, output):
        seen[name] = {"x": inputs[0].detach().bfloat16().float()}
        output.register_hook(lambda g: seen[name].update(up=g.detach().bfloat16().float()))

    hooks = [m.register_forward_hook(lambda _, i, o, n=n: keep(n, i, o)) for n, m in convs.items()]
    torch.manual_seed(1)
    model(torch.randn(5, 1, 64, 64), [2, 3]).sum().backward()
    for hook in hooks:
        hook.remove()
    assert set(seen) == set(convs) and all("up" in s for s in seen.values())
    for layer, conv in convs.items():
        grads = []
        for bf16 in (True, False):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = conv(seen[layer]["x"])
            grads.append(torch.autograd.grad(out.float(), conv.weight, seen[layer]["up"])[0])
        error = float((grads[0] - grads[1]).abs().max() / grads[1].abs().max())
        assert error < 0.02, f"{layer} ({tuple(seen[layer]['x'].shape)}): weight gradient off by {error:.3g}"
