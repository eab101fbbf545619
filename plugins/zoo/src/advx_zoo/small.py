"""Small CNNs: the digits net, paper 000's custom nets, LeNet-5 (paper 001), BatchOut nets (002).

Every conv and linear layer is its own module followed by a separate ReLU module, so a
forward hook on ``convN``/``fcN`` sees the *pre-ReLU* activation (BatchOut works there).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .common import Normalize, check_layers, flat_dim


class Sequential(nn.Sequential):
    """nn.Sequential with named children and declared ``feature_layers``."""

    def __init__(self, layers: list[tuple[str, nn.Module]], feature_layers: tuple[str, ...]) -> None:
        super().__init__(OrderedDict(layers))
        self.feature_layers = feature_layers


def _finish(body: list[tuple[str, nn.Module]], head: list[tuple[str, nn.Module | None]], in_channels: int,
            size: int, features: tuple[str, ...], fc_out: int) -> nn.Module:
    """Flatten ``body`` into ``head``, whose ``None`` entry becomes the first FC layer (sized by probing)."""
    n = flat_dim(nn.Sequential(OrderedDict(body)), in_channels, size)
    head = [(k, nn.Linear(n, fc_out) if m is None else m) for k, m in head]
    return check_layers(Sequential(body + [("flatten", nn.Flatten())] + head, features))


def digits_cnn(num_classes: int, in_channels: int, width: int = 32, size: int = 8) -> nn.Module:
    """Two 3x3 convs + 2x2 pool + FC: ~97 % on `digits` in seconds on a CPU."""
    body = [("conv1", nn.Conv2d(in_channels, width, 3, padding=1)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(width, 2 * width, 3, padding=1)), ("relu2", nn.ReLU()),
            ("pool", nn.AdaptiveAvgPool2d(4))]
    head = [("fc1", None), ("relu3", nn.ReLU()), ("fc2", nn.Linear(128, num_classes))]
    return _finish(body, head, in_channels, size, ("conv1", "conv2", "fc1"), 128)


def custom1(num_classes: int, in_channels: int, size: int = 28, fc_relu: bool = True) -> nn.Module:
    """Paper 000 Table 1, Custom-1 (F-MNIST): Conv 5x5x32, ReLU, MaxPool 3; Conv 8x8x64, ReLU,
    AvgPool 3; Conv 8x8x64, ReLU, AvgPool 3; FC 64, ReLU; FC 10. ('same' padding, pool stride =
    size, as Keras defaults — the only reading under which 28x28 inputs fit.)"""
    body = [("conv1", nn.Conv2d(in_channels, 32, 5, padding="same")), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(3)),
            ("conv2", nn.Conv2d(32, 64, 8, padding="same")), ("relu2", nn.ReLU()), ("pool2", nn.AvgPool2d(3)),
            ("conv3", nn.Conv2d(64, 64, 8, padding="same")), ("relu3", nn.ReLU()), ("pool3", nn.AvgPool2d(3))]
    head = [("fc1", None)] + ([("relu4", nn.ReLU())] if fc_relu else []) + [("fc2", nn.Linear(64, num_classes))]
    return _finish(body, head, in_channels, size, ("conv1", "conv2", "conv3", "fc1"), 64)


def custom_cifar(num_classes: int, in_channels: int, size: int = 32) -> nn.Module:
    """Paper 000 Table 1, Custom (CIFAR): Custom-1's layers with no ReLU between FC 64 and FC 10."""
    return custom1(num_classes, in_channels, size=size, fc_relu=False)


def custom2(num_classes: int, in_channels: int, size: int = 28) -> nn.Module:
    """Paper 000 Table 1, Custom-2 (F-MNIST): Conv 8x8x64, ReLU, Conv 6x6x128, ReLU, Conv 5x5x128,
    ReLU, FC 10. Strides/padding follow the CleverHans basic CNN this layout is (2 'same', 2
    'valid', 1 'valid'), which maps 28x28 to 1x1x128."""
    body = [("conv1", nn.Conv2d(in_channels, 64, 8, stride=2, padding=3)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(64, 128, 6, stride=2)), ("relu2", nn.ReLU()),
            ("conv3", nn.Conv2d(128, 128, 5)), ("relu3", nn.ReLU())]
    n = flat_dim(nn.Sequential(OrderedDict(body)), in_channels, size)
    return check_layers(Sequential(body + [("flatten", nn.Flatten()), ("fc1", nn.Linear(n, num_classes))],
                                   ("conv1", "conv2", "conv3")))


def lenet5(num_classes: int, in_channels: int, size: int = 28) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998) as paper 001 uses on MNIST: conv 6@5x5 (pad 2), pool, conv 16@5x5,
    pool, FC 120, FC 84, FC classes; ReLU and max-pooling."""
    body = [("conv1", nn.Conv2d(in_channels, 6, 5, padding=2)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(6, 16, 5)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2))]
    head = [("fc1", None), ("relu3", nn.ReLU()), ("fc2", nn.Linear(120, 84)), ("relu4", nn.ReLU()),
            ("fc3", nn.Linear(84, num_classes))]
    return _finish(body, head, in_channels, size, ("conv1", "conv2", "fc1", "fc2"), 120)


def batchout_mnist(num_classes: int, in_channels: int, size: int = 28) -> nn.Module:
    """Paper 002 appendix Table 1: Conv(5,5,32) [BatchOut k .5 η .05] ReLU MaxPool 2; Conv(5,5,32)
    [BatchOut η .1] ReLU MaxPool 2; Dropout .5; FC 256 [BatchOut η .1] ReLU; Dropout .5; FC 10.
    The BatchOut layers come from the batchout plugin, placed on ``feature_layers``."""
    body = [("conv1", nn.Conv2d(in_channels, 32, 5)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(32, 32, 5)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
            ("drop1", nn.Dropout(0.5))]
    head = [("fc1", None), ("relu3", nn.ReLU()), ("drop2", nn.Dropout(0.5)), ("fc2", nn.Linear(256, num_classes))]
    return _finish(body, head, in_channels, size, ("conv1", "conv2", "fc1"), 256)


def batchout_cifar(num_classes: int, in_channels: int, size: int = 32) -> nn.Module:
    """Paper 002 appendix Table 2 (VGG-style): Conv 3x3 32, Conv 64, MaxPool, Conv 64 x3, MaxPool,
    Dropout .5, FC 512, FC 512, Dropout .5, FC 10; BatchOut after every conv/FC (η ~ U[0, N])."""
    chans = [(in_channels, 32), (32, 64), (64, 64), (64, 64), (64, 64)]
    body: list[tuple[str, nn.Module]] = []
    for i, (a, b) in enumerate(chans, 1):
        body += [(f"conv{i}", nn.Conv2d(a, b, 3, padding=1)), (f"relu{i}", nn.ReLU())]
        if i in (2, 5):
            body.append((f"pool{i}", nn.MaxPool2d(2)))
    body.append(("drop1", nn.Dropout(0.5)))
    head = [("fc1", None), ("relu6", nn.ReLU()), ("fc2", nn.Linear(512, 512)), ("relu7", nn.ReLU()),
            ("drop2", nn.Dropout(0.5)), ("fc3", nn.Linear(512, num_classes))]
    feats = tuple(f"conv{i}" for i in range(1, 6)) + ("fc1", "fc2")
    return _finish(body, head, in_channels, size, feats, 512)


def with_normalize(model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> nn.Module:
    """Prepend normalisation when mean/std are given (feature-layer names stay valid)."""
    if not mean:
        return model
    if isinstance(model, Sequential):
        layers = [("normalize", Normalize(mean, std))] + list(model.named_children())
        return Sequential(layers, model.feature_layers)
    raise TypeError("with_normalize expects a zoo Sequential")
