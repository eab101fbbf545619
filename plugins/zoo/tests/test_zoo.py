"""Every zoo model builds for its documented shapes, runs forward/backward and names real layers."""

import pytest
import torch

import advx

SHAPES = {
    "digits-cnn": [(1, 8, {})], "custom1": [(1, 28, {})], "custom2": [(1, 28, {})],
    "custom-cifar": [(3, 32, {})], "lenet5": [(1, 28, {})], "batchout-mnist": [(1, 28, {})],
    "batchout-cifar": [(3, 32, {})], "resnet9": [(3, 32, {}), (3, 128, {"size": 128})],
    "preact-resnet18": [(3, 32, {})], "resnet18": [(3, 32, {}), (1, 28, {"size": 28})],
    "resnet50": [(3, 32, {})], "vgg16": [(3, 32, {})],
}
# Parameter counts from the literature (10 classes, CIFAR variants).
KNOWN_PARAMS = {"resnet18": 11_173_962, "resnet50": 23_520_842, "vgg16": 14_728_266, "lenet5": 61_706}


def test_every_registered_model_is_covered():
    assert set(advx.components("model")) >= set(SHAPES)


@pytest.mark.parametrize("name,channels,size,params", [(n, c, s, p) for n, v in SHAPES.items() for c, s, p in v])
def test_builds_forward_backward_and_feature_layers(name, channels, size, params):
    model = advx.create("model", name, **params).build(num_classes=7, in_channels=channels)
    x = torch.rand(2, channels, size, size)
    out = model(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    layers = getattr(model, "feature_layers", ())
    assert layers, f"{name} declares no feature layers"
    seen = {}
    def record(name):
        def hook(module, inputs, output):
            seen[name] = output.shape
        return hook

    hooks = [model.get_submodule(n).register_forward_hook(record(n)) for n in layers]
    model(x)
    for h in hooks:
        h.remove()
    assert set(seen) == set(layers)


@pytest.mark.parametrize("name,count", KNOWN_PARAMS.items())
def test_parameter_counts_match_literature(name, count):
    channels = 1 if name == "lenet5" else 3
    model = advx.create("model", name).build(num_classes=10, in_channels=channels)
    assert sum(p.numel() for p in model.parameters()) == count


def test_resnet9_follows_paper_table8():
    m = advx.create("model", "resnet9").build(10, 3)
    names = [n for n, _ in m.named_children()]
    assert names == ["normalize", "conv_block_1", "conv_block_2", "res_block_1", "conv_block_3", "conv_block_4",
                     "res_block_2", "pool_4", "flatten", "output"]
    assert m.output.in_features == 2048  # 512 x 2 x 2 after pool_4 on 32x32
    hist = advx.create("model", "resnet9", size=128).build(4, 3)
    assert hist.output.in_features == 512  # global average pooling for 128x128 patches


def test_normalisation_lives_inside_the_model():
    m = advx.create("model", "resnet18").build(10, 3)
    assert torch.allclose(m.normalize(torch.full((1, 3, 1, 1), 0.4914)).flatten()[0], torch.tensor(0.0), atol=1e-6)
