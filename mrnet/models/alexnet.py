"""AlexNet's convolutional feature extractor, built here, and its from-scratch initialisation.

Its pretrained weights load like every backbone's (backbones.init_extractor).
"""

from __future__ import annotations

from torch import nn

FEATURES = 256  # channels of AlexNet's last conv layer


def alexnet_features() -> nn.Sequential:
    """torchvision's AlexNet `features` block, layer for layer (same indices, so its state dict loads as is).

    Built here rather than taken from torchvision.models.alexnet(): that would import all of
    torchvision's model zoo (about 1.5 s, a third of a one-exam prediction) and initialise a
    58M-parameter classifier that MRNet throws away.
    """
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def init_from_scratch(features: nn.Module) -> None:
    """He initialisation for the ReLU convolutions of an AlexNet trained without ImageNet weights.

    torchvision leaves AlexNet's convolutions at PyTorch's default init, which shrinks the
    signal layer by layer: five layers deep the per-slice features are nearly constant and a
    from-scratch run sits for epochs at the constant-prediction loss before it starts to learn.
    """
    for layer in features.children():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
