"""Residual and VGG networks: ResNet-9 (paper 003 Table 8), PreAct-ResNet-18 (paper 001),
ResNet-18/50 and VGG-16 (papers 000, 004) reusing torchvision's building blocks."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .common import Normalize, check_layers

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def conv_block(cin: int, cout: int, pool: bool) -> nn.Sequential:
    """Paper 003 Table 5, ConvBlock(channels, pool): conv 3x3, BN, ReLU, MaxPool 2 if pool."""
    layers = [("conv", nn.Conv2d(cin, cout, 3, padding=1, bias=False)), ("bn", nn.BatchNorm2d(cout)),
              ("relu", nn.ReLU())]
    if pool:
        layers.append(("pool", nn.MaxPool2d(2)))
    return nn.Sequential(OrderedDict(layers))


class ResidualBlock(nn.Module):
    """Paper 003 Table 6: input + ConvBlock(ConvBlock(input))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_block_a = conv_block(channels, channels, False)
        self.conv_block_b = conv_block(channels, channels, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block_b(self.conv_block_a(x))


class ResNet9(nn.Module):
    """Paper 003 Table 8: conv_block_1 (64), conv_block_2 (128, pool), res_block_1 (128),
    conv_block_3 (256), conv_block_4 (512, pool), res_block_2 (512), pool_4 (max 4), flatten
    (32x32 inputs) or global average pooling (128x128 HIST patches), dense. Fixers go after
    ``res_block_1`` and ``res_block_2`` (its ``feature_layers``)."""

    feature_layers = ("res_block_1", "res_block_2")

    def __init__(self, num_classes: int, in_channels: int, head: str, mean: tuple, std: tuple, size: int) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv_block_1 = conv_block(in_channels, 64, False)
        self.conv_block_2 = conv_block(64, 128, True)
        self.res_block_1 = ResidualBlock(128)
        self.conv_block_3 = conv_block(128, 256, False)
        self.conv_block_4 = conv_block(256, 512, True)
        self.res_block_2 = ResidualBlock(512)
        self.pool_4 = nn.MaxPool2d(4)
        self.flatten = nn.Flatten() if head == "flatten" else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        side = size // 4 // 4
        self.output = nn.Linear(512 * side * side if head == "flatten" else 512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        for name in ("conv_block_1", "conv_block_2", "res_block_1", "conv_block_3", "conv_block_4", "res_block_2",
                     "pool_4", "flatten", "output"):
            x = getattr(self, name)(x)
        return x


def resnet9(num_classes: int, in_channels: int, size: int = 32, head: str = "auto", mean: tuple = CIFAR_MEAN,
            std: tuple = CIFAR_STD) -> nn.Module:
    head = ("flatten" if size <= 32 else "gap") if head == "auto" else head
    return check_layers(ResNet9(num_classes, in_channels, head, mean if in_channels == len(mean) else (),
                                std if in_channels == len(std) else (), size))


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016, 'Identity mappings')."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        short = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + short


class PreActResNet18(nn.Module):
    """PreAct-ResNet-18 for 32x32 inputs, as paper 001 trains on CIFAR-10 (manifold mixup's net)."""

    feature_layers = ("layer1", "layer2", "layer3", "layer4")

    def __init__(self, num_classes: int, in_channels: int, mean: tuple, std: tuple) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        chans, layers, cin = [64, 128, 256, 512], [], 64
        for i, c in enumerate(chans):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(PreActBlock(cin, c, stride), PreActBlock(c, c, 1)))
            cin = c
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.normalize(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.relu(self.bn(x))
        return self.linear(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def preact_resnet18(num_classes: int, in_channels: int, mean: tuple = CIFAR_MEAN, std: tuple = CIFAR_STD) -> nn.Module:
    return check_layers(PreActResNet18(num_classes, in_channels, mean if in_channels == len(mean) else (),
                                       std if in_channels == len(std) else ()))


class Normalized(nn.Module):
    """Normalise then run a torchvision network; feature layers are ``net.<name>``."""

    def __init__(self, net: nn.Module, mean: tuple, std: tuple, feature_layers: tuple[str, ...]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.feature_layers = feature_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def _tv_resnet(arch: str, num_classes: int, in_channels: int, size: int, mean: tuple, std: tuple) -> nn.Module:
    import torchvision  # here, not at the top: importing it costs every advx process about 2 s

    net = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    if size <= 64:  # CIFAR stem: 3x3 stride-1 conv, no max-pool
        net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    ok = in_channels == len(mean)
    return check_layers(Normalized(net, mean if ok else (), std if ok else (),
                                   ("net.layer1", "net.layer2", "net.layer3", "net.layer4")))


def resnet18(num_classes: int, in_channels: int, size: int = 32, mean: tuple = CIFAR_MEAN, std: tuple = CIFAR_STD) -> nn.Module:
    return _tv_resnet("resnet18", num_classes, in_channels, size, mean, std)


def resnet50(num_classes: int, in_channels: int, size: int = 32, mean: tuple = CIFAR_MEAN, std: tuple = CIFAR_STD) -> nn.Module:
    return _tv_resnet("resnet50", num_classes, in_channels, size, mean, std)


def vgg16(num_classes: int, in_channels: int, size: int = 32, mean: tuple = CIFAR_MEAN, std: tuple = CIFAR_STD) -> nn.Module:
    """VGG-16 with batch norm (torchvision's 'D' configuration). For 32x32 inputs the classifier
    is one linear layer on the 512-d pooled feature (the usual CIFAR variant); for 128/224 inputs
    torchvision's 3-layer classifier."""
    import torchvision
    from torchvision.models.vgg import cfgs, make_layers

    cfg = list(cfgs["D"])
    features = make_layers(cfg, batch_norm=True)
    if in_channels != 3:
        features[0] = nn.Conv2d(in_channels, 64, 3, padding=1)
    if size <= 64:
        net = nn.Sequential(OrderedDict([("features", features), ("flatten", nn.Flatten()),
                                         ("classifier", nn.Linear(512 * (size // 32) ** 2, num_classes))]))
    else:
        net = torchvision.models.VGG(features, num_classes=num_classes, init_weights=True)
    pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
    ok = in_channels == len(mean)
    return check_layers(Normalized(net, mean if ok else (), std if ok else (),
                                   tuple(f"net.features.{i}" for i in pools[1:4])))
