"""Register the zoo's model factories with advx."""

from __future__ import annotations

from typing import ClassVar

import attrs
from torch import nn

from advx.api import hookimpl

from . import resnets, small

#: the advx plugin API range this plugin is written for (advx.api.API_VERSION)
ADVX_API = ">=1.0,<2"

_size = attrs.field(default=32, validator=attrs.validators.ge(8))
_mean = attrs.field(default=resnets.CIFAR_MEAN, converter=tuple)
_std = attrs.field(default=resnets.CIFAR_STD, converter=tuple)


@attrs.frozen
class DigitsCNN:
    """Small fast CNN for `digits` (8x8) and other small grey images: 2 convs + 2 FCs."""

    name: ClassVar[str] = "digits-cnn"
    width: int = attrs.field(default=32, validator=attrs.validators.ge(1))
    size: int = 8

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        return small.digits_cnn(num_classes, in_channels, self.width, self.size)


@attrs.frozen
class Custom1:
    """Paper 000 (Agarwal et al.) Table 1, Custom-1 for Fashion-MNIST."""

    name: ClassVar[str] = "custom1"
    size: int = 28

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        return small.custom1(num_classes, in_channels, self.size)


@attrs.frozen
class Custom2:
    """Paper 000 (Agarwal et al.) Table 1, Custom-2 for Fashion-MNIST (CleverHans basic CNN)."""

    name: ClassVar[str] = "custom2"
    size: int = 28

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        return small.custom2(num_classes, in_channels, self.size)


@attrs.frozen
class CustomCIFAR:
    """Paper 000 (Agarwal et al.) Table 1, Custom (CIFAR)."""

    name: ClassVar[str] = "custom-cifar"
    size: int = 32

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        return small.custom_cifar(num_classes, in_channels, self.size)


@attrs.frozen
class LeNet5:
    """LeNet-5, paper 001's MNIST network."""

    name: ClassVar[str] = "lenet5"
    size: int = 28

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        return small.lenet5(num_classes, in_channels, self.size)


@attrs.frozen
class BatchOutMNIST:
    """Paper 002 (BatchOut) appendix Table 1: 2 conv + FC 256; feature layers conv1, conv2, fc1."""

    name: ClassVar[str] = "batchout-mnist"
    size: int = 28

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        return small.batchout_mnist(num_classes, in_channels, self.size)


@attrs.frozen
class BatchOutCIFAR:
    """Paper 002 (BatchOut) appendix Table 2: VGG-style 5 conv + 2 FC 512."""

    name: ClassVar[str] = "batchout-cifar"
    size: int = 32

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        return small.batchout_cifar(num_classes, in_channels, self.size)


@attrs.frozen
class ResNet9:
    """Paper 003 Table 8 ResNet-9 (fixers after res_block_1, res_block_2); head 'auto' is
    flatten for 32x32 and global average pooling for larger (128x128 HIST) inputs."""

    name: ClassVar[str] = "resnet9"
    size: int = _size
    head: str = attrs.field(default="auto", validator=attrs.validators.in_(["auto", "flatten", "gap"]))
    mean: tuple[float, ...] = _mean
    std: tuple[float, ...] = _std

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        return resnets.resnet9(num_classes, in_channels, self.size, self.head, self.mean, self.std)


@attrs.frozen
class PreActResNet18:
    """PreAct-ResNet-18 (He et al. 2016), paper 001's CIFAR-10 network."""

    name: ClassVar[str] = "preact-resnet18"
    mean: tuple[float, ...] = _mean
    std: tuple[float, ...] = _std

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        return resnets.preact_resnet18(num_classes, in_channels, self.mean, self.std)


@attrs.frozen
class ResNet18:
    """ResNet-18 (torchvision blocks); CIFAR stem (3x3 conv, no max-pool) for inputs <= 64 px."""

    name: ClassVar[str] = "resnet18"
    size: int = _size
    mean: tuple[float, ...] = _mean
    std: tuple[float, ...] = _std

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        return resnets.resnet18(num_classes, in_channels, self.size, self.mean, self.std)


@attrs.frozen
class ResNet50:
    """ResNet-50 (torchvision blocks), paper 004's network; CIFAR stem for inputs <= 64 px."""

    name: ClassVar[str] = "resnet50"
    size: int = _size
    mean: tuple[float, ...] = _mean
    std: tuple[float, ...] = _std

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        return resnets.resnet50(num_classes, in_channels, self.size, self.mean, self.std)


@attrs.frozen
class VGG16:
    """VGG-16 with BN (paper 000's CIFAR-10 network); CIFAR head for 32x32, torchvision's otherwise."""

    name: ClassVar[str] = "vgg16"
    size: int = _size
    mean: tuple[float, ...] = _mean
    std: tuple[float, ...] = _std

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        return resnets.vgg16(num_classes, in_channels, self.size, self.mean, self.std)


MODELS = [DigitsCNN, Custom1, Custom2, CustomCIFAR, LeNet5, BatchOutMNIST, BatchOutCIFAR, ResNet9, PreActResNet18,
          ResNet18, ResNet50, VGG16]


@hookimpl
def advx_register_models() -> list[type]:
    return list(MODELS)
