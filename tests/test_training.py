"""The trainer: determinism, what it optimises, schedules, losses, checkpoints."""

import pytest
import torch

import advx
from advx.config import TrainSettings
from advx.data.sources import Digits
from advx.errors import AdvxError, ConfigError
from advx.losses import focal_loss, one_hot, soft_cross_entropy
from advx.protocols import AugmentationBase
from advx.registry import Registry
from advx.training import load_checkpoint, save_checkpoint, train


@pytest.fixture(scope="module")
def data():
    return Digits().load()


def fresh():
    torch.manual_seed(123)
    return advx.create("model", "digits-cnn").build(10, 1)


def fit(model, data, **kw):
    s = TrainSettings(**{"epochs": 2, "batch_size": 64, "lr": 2e-3, **kw})
    return train(model, data, s, kw.pop("augs", []) if "augs" in kw else [], seed=0, device=torch.device("cpu"),
                 registry=Registry())


def test_deterministic_on_cpu(data):
    a, b = fit(fresh(), data), fit(fresh(), data)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("opt,sched", [("sgd", "step"), ("adam", "onecycle"), ("adamw", "cosine"), ("sgd", "none")])
def test_optimisers_and_schedules_learn(data, opt, sched):
    m = fit(fresh(), data, optimizer=opt, schedule=sched, lr=0.05 if opt == "sgd" else 2e-3, epochs=4, step_size=2)
    with torch.no_grad():
        assert (m(data.x_test).argmax(1) == data.y_test).float().mean() > 0.8


def test_multistep_drops_the_lr_at_each_milestone_epoch():
    """Paper 001 (lr 0.1 → 0.01 → 0.001 at epochs 300, 400) and paper 004 (drops at 100, 150)."""
    from advx.training.loop import _scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = _scheduler(opt, TrainSettings(epochs=6, lr=0.1, schedule="multistep", milestones=(2, 4)), steps_per_epoch=3)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        for _ in range(3):
            opt.step()
            sched.step()
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_only_parameters_requiring_grad_are_optimised(data):
    m = fresh()
    for p in m.conv1.parameters():
        p.requires_grad_(False)
    before = m.conv1.weight.clone()
    other = m.fc2.weight.clone()
    fit(m, data)
    assert torch.equal(before, m.conv1.weight) and not torch.equal(other, m.fc2.weight)


def test_losses():
    logits = torch.randn(5, 4)
    y = torch.tensor([0, 1, 2, 3, 0])
    assert torch.allclose(soft_cross_entropy(logits, one_hot(y, 4)), torch.nn.functional.cross_entropy(logits, y))
    assert torch.allclose(focal_loss(logits, one_hot(y, 4), gamma=0.0), soft_cross_entropy(logits, one_hot(y, 4)))
    assert focal_loss(logits, one_hot(y, 4), gamma=2.0) < soft_cross_entropy(logits, one_hot(y, 4))


def test_hooks_are_called_in_recipe_order(data):
    calls = []

    class Spy(AugmentationBase):
        def __init__(self, tag):
            self.tag = tag

        def setup(self, ctx):
            calls.append(("setup", self.tag))

        def augment(self, batch, ctx):
            calls.append(("augment", self.tag))
            return batch

        def teardown(self, ctx):
            calls.append(("teardown", self.tag))

    s = TrainSettings(epochs=1, batch_size=2000)
    train(fresh(), data, s, [Spy("a"), Spy("b")], seed=0, device=torch.device("cpu"), registry=Registry())
    assert calls == [("setup", "a"), ("setup", "b"), ("augment", "a"), ("augment", "b"), ("teardown", "b"),
                     ("teardown", "a")]


def test_checkpoints_load_with_weights_only(tmp_path, data):
    m = fit(fresh(), data, epochs=1)
    save_checkpoint(m, tmp_path / "m.pt", {"label": "x"})
    sd = load_checkpoint(tmp_path / "m.pt")
    assert all(torch.equal(sd[k], v) for k, v in m.state_dict().items())

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state_dict": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_checkpoint(tmp_path / "evil.pt")


def test_an_image_augmentation_must_be_one(tmp_path):
    """[data] augment names a registered image augmentation; a recipe or a typo is one line at its
    TOML path, before anything trains."""
    raw = {"data": {"name": "digits", "augment": "mixup"}, "model": {"name": "digits-cnn"},
           "attack": [{"name": "fgsm"}]}
    with pytest.raises(ConfigError, match="data.augment: 'mixup' is a training recipe, not an image "
                                          "augmentation; .* name one of: none, crop-flip"):
        advx.load_experiment(raw)
    raw["data"]["augment"] = "crop-flop"
    with pytest.raises(AdvxError, match="unknown training augmentation 'crop-flop' at data.augment; did you mean 'crop-flip'"):
        advx.load_experiment(raw)
    raw["data"]["augment"] = "none"
    raw["train"] = [{"label": "aug", "data_augment": "crop-flip"}, {"label": "bad", "data_augment": "fixer"}]
    with pytest.raises(ConfigError, match=r"train\[1\].data_augment: 'fixer' is a training recipe"):
        advx.load_experiment(raw)
    raw["train"].pop()
    assert sorted(advx.load_experiment(raw).components["image_augment"]) == ["crop-flip", "none"]


def test_each_component_is_created_once_per_run(tmp_path, monkeypatch):
    """One TOML component, one instance: the experiment resolves each from its TOML path once, and
    training, the model cache key and evaluation all use that instance."""
    import collections

    counts = collections.Counter()
    create = Registry.create

    def counted(self, kind, name, params=None, where=None):
        counts[(kind, name)] += 1
        return create(self, kind, name, params, where)

    monkeypatch.setattr(Registry, "create", counted)
    raw = {"experiment": {"cache_dir": str(tmp_path)},
           "data": {"name": "digits", "test_limit": 20, "augment": "crop-flip"},
           "model": {"name": "digits-cnn", "train": {"epochs": 1}},
           "train": [{"label": "mix", "epochs": 1, "augment": [{"name": "mixup"}]}],
           "attack": [{"name": "fgsm", "eps": 0.1}]}
    advx.load_experiment(raw).run(tmp_path / "run.h5")
    assert counts and set(counts.values()) == {1}, dict(counts)
