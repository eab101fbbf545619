"""Evaluate your own model: networks from torchvision, timm, RobustBench and the user's code,
checkpoints in every format, normalisation in pixel space, and `advx eval` — all from local files."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import advx
from advx.checkpoints import Normalized
from advx.config import load_config
from advx.training.models import build_model
from advx.testing import digits_model


@pytest.fixture(scope="module")
def trained():
    return digits_model(epochs=5)


@pytest.fixture()
def files(trained, tmp_path):
    """The trained digits CNN saved in each format a user might hand over."""
    model, _ = trained
    from safetensors.torch import save_file

    state = model.state_dict()
    torch.save(state, tmp_path / "net.pt")
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 5}, tmp_path / "ddp.pt")
    torch.save({k.replace("conv1", "stem"): v for k, v in state.items()}, tmp_path / "renamed.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "net.safetensors"))
    torch.jit.save(torch.jit.script(model), str(tmp_path / "net.ts"))
    return tmp_path


def logits(net, x):
    with torch.no_grad():
        return net.eval()(x)


def build(raw, data):
    cfg = load_config(raw)
    return build_model(cfg, advx.get_registry(), data)


@pytest.mark.parametrize("model_table", [
    {"name": "digits-cnn", "checkpoint": "net.pt"},
    {"name": "digits-cnn", "checkpoint": "ddp.pt", "strip_prefix": "module."},
    {"name": "digits-cnn", "checkpoint": "net.safetensors"},
    {"name": "digits-cnn", "checkpoint": "net.ts"},  # a TorchScript archive's weights into the named network
    {"checkpoint": "net.ts"},  # the archive is the network
], ids=["state-dict", "ddp-prefix", "safetensors", "torchscript-weights", "torchscript"])
def test_each_checkpoint_format_gives_the_saved_network(trained, files, model_table):
    model, data = trained
    table = {k: (str(files / v) if k == "checkpoint" else v) for k, v in model_table.items()}
    net = build({"model": table}, data)
    x = data.x_test[:16].float()
    assert torch.equal(logits(net, x), logits(model, x))
    assert load_config({"model": table}).pretrained  # evaluated as loaded, never trained


def test_torchvision_network_with_local_weights(tmp_path):
    import torchvision

    torch.manual_seed(0)
    ref = torchvision.models.resnet18(num_classes=10).eval()
    torch.save(ref.state_dict(), tmp_path / "r18.pt")
    net = advx.create("model", "torchvision:resnet18", weights=str(tmp_path / "r18.pt")).build(10, 3)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(logits(net, x), logits(ref, x))
    fresh = advx.create("model", "torchvision:resnet18", kwargs={"zero_init_residual": True}).build(7, 3)
    assert fresh.fc.out_features == 7  # the data set's classes when no ImageNet weights fix them


def test_torchvision_imagenet_weights_are_not_fetched_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(advx.errors.ConfigError, match="download = true"):
        advx.create("model", "torchvision:resnet18", weights="IMAGENET1K_V1").build(1000, 3)
    with pytest.raises(advx.errors.ConfigError, match="classifies 1000 classes but the data set has 10"):
        advx.create("model", "torchvision:resnet18", weights="IMAGENET1K_V1").build(10, 3)
    with pytest.raises(advx.errors.ConfigError, match="no weights 'NOPE'.*IMAGENET1K_V1"):
        advx.create("model", "torchvision:resnet18", weights="NOPE").build(1000, 3)


def test_timm_network_with_a_checkpoint(tmp_path):
    timm = pytest.importorskip("timm", reason="timm is the optional extra advx[timm]; requirements-test.txt has it")
    torch.manual_seed(0)
    ref = timm.create_model("resnet10t", pretrained=False, num_classes=10, in_chans=1).eval()
    torch.save(ref.state_dict(), tmp_path / "t.pt")
    net = build({"model": {"name": "timm:resnet10t", "checkpoint": str(tmp_path / "t.pt")}},
                advx.create("dataset", "digits").load())
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(logits(net, x), logits(ref, x))


def test_python_factory_from_the_users_own_package(tmp_path, monkeypatch, trained):
    model, data = trained
    pkg = tmp_path / "my_nets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "small.py").write_text(textwrap.dedent("""
        from torch import nn

        def build_net(num_classes, width=16):
            return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, num_classes))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    net = advx.create("model", "python:my_nets.small:build_net", kwargs={"width": 5}).build(10, 1)
    assert net[1].out_features == 5 and net[3].out_features == 10
    torch.save(net.state_dict(), tmp_path / "w.pt")
    again = build({"model": {"name": "python:my_nets.small:build_net", "kwargs": {"width": 5},
                             "checkpoint": str(tmp_path / "w.pt")}}, data)
    x = data.x_test[:4].float()
    assert torch.equal(logits(again, x), logits(net, x))
    # wrong keyword arguments are named with the factory's own signature, not a TypeError (issue #46)
    from advx.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model.kwargs: python:my_nets.small:build_net cannot take \['widht'\] "
                                          r"\(.*\); its signature is build_net\(num_classes, width=16\)"):
        advx.create("model", "python:my_nets.small:build_net", kwargs={"widht": 5}).build(10, 1)


def test_robustbench_model_from_its_cache_layout(tmp_path, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("robustbench") is None:
        pytest.skip("robustbench is the optional extra advx[robustbench]; requirements-test.txt has it")
    from advx.model_sources import _import_robustbench

    _import_robustbench()
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    from robustbench.model_zoo.models import model_dicts

    torch.manual_seed(0)  # a fake checkpoint: random weights of the real architecture, in RobustBench's layout
    ref = model_dicts[BenchmarkDataset.cifar_10][ThreatModel.Linf]["Wong2020Fast"]["model"]().eval()
    folder = tmp_path / "models" / "cifar10" / "Linf"
    folder.mkdir(parents=True)
    torch.save(ref.state_dict(), folder / "Wong2020Fast.pt")
    net = advx.create("model", "robustbench:Wong2020Fast", model_dir=str(tmp_path / "models")).build(10, 3)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(logits(net, x), logits(ref, x))
    from click.testing import CliRunner

    from advx.cli import cli

    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32), y=np.array([0, 3, 5, 9]))
    r = CliRunner().invoke(cli, ["eval", "--model", "robustbench:Wong2020Fast", "--model-arg",
                                 f"model_dir={tmp_path / 'models'}", "--data", str(tmp_path / "x.npz"), "--attack",
                                 "fgsm", "--out", str(tmp_path / "rb.h5")])
    assert r.exit_code == 0, r.output
    with pytest.raises(advx.errors.ConfigError, match=r"Carmon2019Unlabeled.pt not found.*download = true"):
        advx.create("model", "robustbench:Carmon2019Unlabeled", model_dir=str(tmp_path / "models")).build(10, 3)
    # download = true with no network (a closed proxy makes that certain): one line, exit 2, no
    # partial file (in this process: robustbench is imported already, a new process pays it again)
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    r = CliRunner().invoke(cli, ["eval", "--model", "robustbench:Carmon2019Unlabeled", "--model-arg",
                                 f"model_dir={tmp_path / 'models'}", "--model-arg", "download=true", "--data",
                                 str(tmp_path / "x.npz"), "--attack", "fgsm", "--out", str(tmp_path / "c.h5")])
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert lines[0].startswith("error: model.name: downloading RobustBench's Carmon2019Unlabeled failed (")
    assert "check the network, or put the checkpoint at" in lines[0]
    assert not (tmp_path / "models" / "cifar10" / "Linf" / "Carmon2019Unlabeled.pt").exists()


def test_normalisation_is_inside_the_model_and_eps_stays_in_pixels(trained):
    model, data = trained
    mean, std = [0.3], [0.2]
    net = build({"model": {"name": "digits-cnn", "normalize": {"mean": mean, "std": std}}}, data)
    net.model.load_state_dict(model.state_dict())
    assert isinstance(net, Normalized)
    x, y = data.x_test[:64].float(), data.y_test[:64]
    assert torch.allclose(logits(net, x), logits(model, (x - 0.3) / 0.2), atol=0, rtol=0)
    eps = 8 / 255
    x_adv = advx.create("attack", "pgd", eps=eps, steps=5)(net, x, y)
    assert (x_adv - x).abs().max() <= eps + 1e-6  # the budget is in pixels, not in normalised units
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    preset = build({"model": {"name": "digits-cnn", "normalize": "mnist"}}, data)
    assert preset.mean.flatten().tolist() == pytest.approx([0.1307]) and preset.std.shape == (1, 1, 1, 1)


def test_npz_and_torchvision_datasets_from_local_files(tmp_path, trained):
    from .test_data import make_mnist

    _, data = trained
    np.savez(tmp_path / "test.npz", x=data.x_test.numpy().transpose(0, 2, 3, 1), y=data.y_test.numpy())
    d = advx.create("dataset", "npz", path=str(tmp_path / "test.npz"), test_fraction=1.0).load()
    assert len(d.x_train) == 0 and torch.equal(d.x_test, data.x_test) and torch.equal(d.y_test, data.y_test)
    make_mnist(tmp_path / "MNIST" / "raw", gz=False)
    tv = advx.create("dataset", "torchvision:MNIST", root=str(tmp_path)).load()
    ours = advx.create("dataset", "mnist", root=str(tmp_path)).load()
    assert torch.equal(tv.x_train, ours.x_train) and torch.equal(tv.y_test, ours.y_test)


class Ran:
    def __init__(self, result):
        self.returncode, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr


def advx_cli(*args, cwd, monkeypatch):
    """The CLI in this process (no interpreter start-up), run from ``cwd``."""
    from click.testing import CliRunner

    from advx.cli import cli

    monkeypatch.chdir(cwd)
    return Ran(CliRunner().invoke(cli, list(args)))


def correct_by_cell(path):
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                     and name.endswith("correct") else None)
    return out


def test_advx_eval_matches_the_same_evaluation_through_a_toml_file(files, trained, monkeypatch):
    root = files
    r = advx_cli("eval", "--model", "digits-cnn", "--checkpoint", "net.pt", "--data", "digits", "--n", "60",
                 "--attack", "pgd", "--attack", "fgsm", "--eps", "0.1", "--out", "eval.h5",
                 "--save-config", "eval.toml", cwd=root, monkeypatch=monkeypatch)
    assert r.returncode == 0, r.stderr
    assert "worst case" in r.stdout and "advx run eval.toml --out eval.h5 resumes" in r.stdout
    (root / "by_hand.toml").write_text(textwrap.dedent("""
        [experiment]
        name = "eval"
        output = "runs/eval.h5"
        [data]
        name = "digits"
        test_limit = 60
        [model]
        name = "digits-cnn"
        checkpoint = "net.pt"
        [[attack]]
        name = "pgd"
        eps = 0.1
        [[attack]]
        name = "fgsm"
        eps = 0.1
    """))
    r2 = advx_cli("run", "by_hand.toml", "--out", "toml.h5", cwd=root, monkeypatch=monkeypatch)
    assert r2.returncode == 0, r2.stderr
    a, b = correct_by_cell(root / "eval.h5"), correct_by_cell(root / "toml.h5")
    assert a.keys() == b.keys() and len(a) >= 3
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    resumed = advx_cli("run", "eval.toml", "--out", "eval.h5", cwd=root, monkeypatch=monkeypatch)  # the saved config resumes the run
    assert resumed.returncode == 0 and resumed.stdout.splitlines()[-1] == "results: eval.h5"


def test_evaluate_takes_any_module_and_tensors(trained, tmp_path, capsys):
    model, data = trained
    x, y = data.x_test[:40].float(), data.y_test[:40]
    results = advx.evaluate(model, (x, y), attack="pgd", eps=0.1, out=tmp_path / "r.h5")
    # it says where it wrote, and the result prints as the report's tables, not a raw dict (issue #46)
    assert f"results in {tmp_path / 'r.h5'}" in capsys.readouterr().err
    shown = repr(results)
    assert shown.startswith("robust accuracy (%) — per-sample worst case") and "accuracy (%) — oblivious attacks" in shown
    frame = results.to_pandas()
    assert list(frame.columns[:5]) == ["train", "defense", "attack", "mode", "budget"] and len(frame) == len(results.cells)
    clean = (logits(model, x).argmax(1) == y).float().mean().item()
    worst = results.worst_case("base", "none")
    clean_cell = next(c for c in worst.cells if c.cell.attack == "clean")
    assert clean_cell.accuracy == pytest.approx(100 * clean)
    assert worst.accuracy < clean_cell.accuracy
    assert next(model.parameters()).device.type == "cpu"  # the caller's module is used on a copy


def test_evaluate_takes_numpy_arrays_and_names_bad_labels(trained, tmp_path):
    """Labels as a NumPy array ended in "dictionary update sequence" (issue #46): arrays are taken as
    tensors, and labels that are not one class index per image are named."""
    from advx.errors import ConfigError

    model, data = trained
    x, y = data.x_test[:20].float(), data.y_test[:20]
    ours = advx.evaluate(model, (x.numpy(), y.numpy()), attack="fgsm", eps=0.1, out=tmp_path / "np.h5")
    ref = advx.evaluate(model, (x, y), attack="fgsm", eps=0.1, out=tmp_path / "t.h5")
    assert [c.accuracy for c in ours.cells] == [c.accuracy for c in ref.cells]
    with pytest.raises(ConfigError, match=r"labels must be one integer class index per image \(shape \(N,\)\), "
                                          r"got torch.float32 of shape \(20, 10\)"):
        advx.evaluate(model, (x, torch.nn.functional.one_hot(y, 10).float()), attack="fgsm", eps=0.1,
                      out=tmp_path / "oh.h5")


def test_tensors_with_nan_pixels_or_negative_labels_are_refused_when_read(trained, tmp_path):
    """The same check as for files, for tensors handed to ``advx.evaluate`` (issue #46)."""
    from advx.errors import DatasetNotFoundError

    model, data = trained
    x, y = data.x_test[:20].float().clone(), data.y_test[:20].clone()
    x[5, 0, 1, 1] = float("nan")
    with pytest.raises(DatasetNotFoundError, match=r"1 of 20 test images have NaN or infinite pixels \(the first at index 5\)"):
        advx.evaluate(model, (x, y), attack="fgsm", eps=0.1, out=tmp_path / "r.h5")
    x, y = data.x_test[:20].float(), data.y_test[:20].clone()
    y[2] = -1
    with pytest.raises(DatasetNotFoundError, match=r"test labels are outside 0\.\.9 \(the first, at index 2, is -1\)"):
        advx.evaluate(model, (x, y), attack="fgsm", eps=0.1, out=tmp_path / "r2.h5")


def test_the_class_count_comes_from_the_network_not_the_labels_present(trained, tmp_path):
    """16 images of classes 0-4 only: the network scores 10 classes, so the run has 10."""
    model, data = trained
    keep = (data.y_test < 5).nonzero().flatten()[:16]
    x, y = data.x_test[keep].float(), data.y_test[keep]
    assert int(y.max()) < 9
    results = advx.evaluate(model, (x, y), attack={"name": "pgd", "steps": 2}, eps=0.1, out=tmp_path / "r.h5")
    assert len(results.cells) == 2 and all(len(c.arrays["correct"]) == 16 for c in results.cells)
    with pytest.raises(advx.errors.ConfigError, match="label 12 is outside the network's 10 outputs"):
        advx.evaluate(model, (x, torch.full_like(y, 12)), attack="fgsm", eps=0.1, out=tmp_path / "bad.h5")


BAD = [
    (["--model", "digits-cnn", "--checkpoint", "missing.pt"], "model.checkpoint: file missing.pt not found"),
    (["--model", "python:not_a_module_here:build"], "cannot import 'not_a_module_here'"),
    (["--model", "python:json:nothing"], "json has no callable 'nothing'"),
    (["--model", "digits-cnn", "--checkpoint", "renamed.pt"],
     "missing keys ['conv1.weight', 'conv1.bias']; unexpected keys ['stem.weight', 'stem.bias']"),
    (["--model", "digits-cnn", "--checkpoint", "ddp.pt"], "pass --strip-prefix module. (or set strip_prefix = \"module.\" in [model])"),
    (["--model", "digits-cnn", "--checkpoint", "net.pt", "--normalize", "imagenet"],
     "model.normalize.mean: 3 values for 1-channel images"),
    (["--model", "digits-cnn", "--checkpoint", "net.pt", "--normalize", "0.5/-1"], "std: every value must be positive"),
    (["--checkpoint", "net.pt"], "net.pt is a state dict, so name the network"),
    ([], "--model: name the network"),
    (["--model", "torchvision:not_a_net", "--checkpoint", "net.pt"], "torchvision has no model 'not_a_net'"),
    (["--model", "torchvision:resnet18"], "--checkpoint: torchvision:resnet18 has no trained weights of its own"),
    (["--model", "digits-cnn", "--checkpoint", "net.pt", "--attack", "nope"], "unknown attack 'nope'"),
    (["--model", "digits-cnn", "--checkpoint", "garbage.pt"], "garbage.pt cannot be read as weights"),
    # a norm the attack does not have is refused, not run in the attack's own norm (issue #46)
    (["--model", "digits-cnn", "--checkpoint", "net.pt", "--attack", "fgsm", "--norm", "l2", "--eps", "0.5"],
     "--norm l2: attack 'fgsm' runs in linf only; attacks with l2: apgd, apgd-t, autoattack, bim"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m[:30] for _, m in BAD])
def test_bad_input_exits_2_with_one_line(files, args, message, monkeypatch):
    from click.testing import CliRunner

    from advx.cli import cli

    (files / "garbage.pt").write_bytes(b"not a checkpoint")
    monkeypatch.chdir(files)
    r = CliRunner().invoke(cli, ["eval", "--data", "digits", "--n", "8", *args])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output, r.output
    assert message in lines[0], lines[0]
    assert not list(Path(files).glob("runs/*.h5"))  # nothing written


def test_a_minimal_norm_attack_given_eps_reports_its_success_within_it(files, monkeypatch):
    """``--attack deepfool --eps 8/255`` (issue #46): DeepFool has no eps of its own, so the eps is
    its budget: the headline is its success within linf 8/255, not an unbounded 0 %."""

    from click.testing import CliRunner

    from advx.cli import cli

    monkeypatch.chdir(files)
    r = CliRunner().invoke(cli, ["eval", "--model", "digits-cnn", "--checkpoint", "net.pt", "--data", "digits",
                                 "--n", "30", "--attack", "deepfool", "--norm", "linf", "--eps", "8/255",
                                 "--save-config", "e.toml"])
    assert r.exit_code == 0, r.output
    assert "linf 8/255" in r.output and "unbounded" not in r.output
    res = advx.open_run(next(Path(files).glob("runs/eval-*.h5")))
    cell = next(c for c in res.cells if c.cell.attack != "clean")
    assert cell.info["budget"] == "linf 8/255" and res.header["config"]["attack"][0]["budget"] == "8/255"
    clean = next(c for c in res.cells if c.cell.attack == "clean")
    assert cell.accuracy > 0 and cell.accuracy <= clean.accuracy
    assert (cell.arrays["linf"] <= 8 / 255 + 1e-5).all()


def test_a_replaced_checkpoint_is_a_new_model_not_a_reused_run(files, trained):
    model, data = trained
    raw = {"experiment": {"name": "x"}, "data": {"name": "digits"},
           "model": {"name": "digits-cnn", "checkpoint": str(files / "net.pt")}}
    exp = advx.load_experiment(raw)
    before = exp.default_output()
    other = {k: v + 0.01 for k, v in model.state_dict().items()}
    shutil.copy(files / "net.pt", files / "net.bak")
    torch.save(other, files / "net.pt")
    assert advx.load_experiment(raw).default_output() != before


def test_a_loaded_network_is_not_trained_and_says_how_to_fine_tune_it(files):
    raw = {"model": {"name": "digits-cnn", "checkpoint": str(files / "net.pt"), "train": {"epochs": 2}}}
    with pytest.raises(advx.errors.ConfigError, match=r"model.train: .*arrives trained.*init = \"base\""):
        load_config(raw)
    with pytest.raises(advx.errors.ConfigError, match="a model without a name is a TorchScript archive"):
        load_config({"model": {"checkpoint": str(files / "net.ts"), "width": 3}})
    fine_tune = load_config({"model": {"name": "digits-cnn", "checkpoint": str(files / "net.pt")},
                             "train": [{"label": "ft", "init": "base", "epochs": 1}]})
    assert fine_tune.pretrained and [t.label for t in fine_tune.trains] == ["base", "ft"]


def test_advx_eval_takes_the_class_count_for_a_file_that_misses_classes(tmp_path):
    """16 digits of classes 0-4 in an .npz: --num-classes 10 builds the 10-class network the
    checkpoint holds; the labels only have to lie inside it."""
    from click.testing import CliRunner

    from advx.cli import cli

    model, data = digits_model()
    torch.save(model.state_dict(), tmp_path / "net.pt")
    keep = (data.y_test < 5).nonzero().flatten()[:16]
    np.savez(tmp_path / "d.npz", x=data.x_test[keep].numpy(), y=data.y_test[keep].numpy())
    args = ["eval", "--model", "digits-cnn", "--checkpoint", str(tmp_path / "net.pt"), "--data",
            str(tmp_path / "d.npz"), "--attack", "fgsm", "--eps", "0.1"]
    ok = CliRunner().invoke(cli, [*args, "--num-classes", "10", "--out", str(tmp_path / "r.h5")])
    assert ok.exit_code == 0, ok.output
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert len(f["test/index"]) == 16
    bad = CliRunner().invoke(cli, [*args, "--num-classes", "3", "--out", str(tmp_path / "b.h5")])
    assert bad.exit_code == 2 and "outside num_classes = 3" in bad.output, bad.output


def test_the_class_count_comes_from_the_checkpoint_when_the_labels_miss_classes(tmp_path):
    """A test file whose labels cover 7 of CIFAR-10's classes: the network's own 10 outputs (its
    classifier rows in a state dict, its output width as TorchScript) decide, with a warning; a
    network scoring fewer classes than the labels need is refused in one line naming --num-classes."""
    import torchvision
    from click.testing import CliRunner

    from advx.cli import cli

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "r18.pt")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "x7.npz", x=rng.random((8, 32, 32, 3), dtype=np.float32), y=np.array([0, 1, 2, 3, 4, 5, 6, 6]))
    env = {**os.environ, "ADVX_PROGRESS": "0"}
    r = subprocess.run([sys.executable, "-m", "advx", "eval", "--model", "torchvision:resnet18", "--checkpoint",
                        str(tmp_path / "r18.pt"), "--data", str(tmp_path / "x7.npz"), "--attack", "fgsm", "--out",
                        str(tmp_path / "e.h5")], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "warning: data: the labels cover 7 classes; the network scores 10, so 10 are used" in r.stderr
    with h5py.File(tmp_path / "e.h5", "r") as f:
        pred = np.concatenate([g["prediction"][()] for g in f["cells"].values()])
    assert pred.max() < 10 and len(pred)
    small = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 5)).eval()
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(small, torch.zeros(1, 3, 32, 32)), tmp_path / "five.ts")
    r = CliRunner().invoke(cli, ["eval", "--checkpoint", str(tmp_path / "five.ts"), "--data", str(tmp_path / "x7.npz"),
                                 "--attack", "fgsm", "--out", str(tmp_path / "f.h5")])
    assert r.exit_code == 2, r.output
    assert "the network scores 5 classes but the data's labels go up to 6" in r.output
    assert "--num-classes" in r.output and "Traceback" not in r.output
