"""The HDF5 run file: schema, resume after SIGKILL, locking, foreign/corrupt files, the oblivious cache."""

import copy
import fcntl
import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch

import advx
from advx.data.bundle import as_float
from advx.errors import StoreError
from advx.evaluation.store import RunStore


PER_SAMPLE = ["index", "label", "prediction", "correct", "linf", "l2", "loss"]


def run_exp(cfg, out, **kw):
    return advx.load_experiment(cfg).run(out, **kw)


def test_schema_matches_the_docs(tmp_path, tiny_config):
    out = tmp_path / "r.h5"
    tiny_config["evaluate"]["save_adversarials"] = True
    run_exp(tiny_config, out)
    with h5py.File(out, "r") as f:
        for key in ["advx_schema", "config", "config_hash", "versions", "device", "created"]:
            assert key in f.attrs
        versions = json.loads(f.attrs["versions"])
        assert "torch" in versions and "advx" in versions and "advx-attacks" in versions
        assert json.loads(f.attrs["config"])["data"]["name"] == "digits"
        assert set(f["test"]) == {"index", "label", "fold"}
        cells = f["cells"]
        assert len(cells) == 6  # 2 defences x (clean + 2 attacks)
        for name in cells:
            g = cells[name]
            spec = json.loads(g.attrs["spec"])
            assert set(spec) == {"train", "defense", "attack", "mode"}
            assert g.attrs["status"] == "done" and g.attrs["n_done"] == 120
            for k in ["seconds", "forwards", "backwards", "forward_rows", "backward_rows", "eot", "randomized"]:
                assert k in g.attrs, k
            if spec["defense"] == "none" and spec["attack"] == "PGD-3":  # the cell that crafts: 3 steps per sample
                assert g.attrs["backward_rows"] >= g.attrs["backwards"] > 0
            for k in PER_SAMPLE:
                assert g[k].shape == (120,)
            assert ("x_adv" in g) == (spec["mode"] != "clean")
        assert f["models/base"].attrs["hash"]
        adv = f["adversarials"]
        assert len(adv) == 2 and all(adv[k]["x_adv"].shape == (120, 1, 8, 8) for k in adv)
        assert "tables" in f["metrics/accuracy"].attrs


def test_oblivious_examples_are_crafted_once_and_reused_by_every_defence(tmp_path, tiny_config):
    tiny_config["defense"].append({"label": "guo2", "chain": [{"name": "crop-rescale"}], "repeats": 2})
    res = run_exp(tiny_config, tmp_path / "r.h5")
    assert len(res.adversarials) == 2
    for info in res.adversarials.values():
        assert info["crafted"] == 120  # each test sample attacked exactly once per attack
    pgd = [c for c in res.cells if c.cell.attack == "PGD-3"]
    assert len(pgd) == 3
    # the undefended cell crafts (and records the passes); the defences' cells reuse its adversarials
    crafting = [c for c in pgd if c.cell.defense == "none"]
    assert len(crafting) == 1 and crafting[0].info["backwards"] > 0
    assert all(c.info["backwards"] == 0 for c in pgd if c.cell.defense != "none"), \
        "oblivious cells must not re-run the attack"
    a, b = (np.asarray(c.arrays["linf"]) for c in pgd[:2])
    assert np.array_equal(a, b)  # the very same adversarial examples


def _digest(path):
    with h5py.File(path, "r") as f:
        return {json.loads(f["cells"][k].attrs["spec"])["attack"] + "/" + json.loads(f["cells"][k].attrs["spec"])["defense"]:
                {n: f["cells"][k][n][()] for n in PER_SAMPLE} for k in f["cells"]}


def test_second_writer_is_refused(tmp_path, tiny_config):
    out = tmp_path / "r.h5"
    with RunStore(out):
        with pytest.raises(StoreError, match="being written by another advx process"):
            run_exp(tiny_config, out)
    assert not list(tmp_path.rglob("*.lock"))  # the writer deletes its lock when it closes


def test_a_waiter_never_holds_a_deleted_lock(tmp_path):
    """The lock file is deleted on release: a writer that opened the old file before it went takes
    the new one instead, so two writers never both hold 'the' lock."""
    out = tmp_path / "r.h5"
    first = RunStore(out).__enter__()
    stale = open(str(out) + ".lock", "a")  # a second process's open, before the first releases
    first.close()
    assert not (tmp_path / "r.h5.lock").exists()
    with RunStore(out):
        fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the stale inode is free, but no longer the lock
        with pytest.raises(StoreError, match="being written by another advx process"):
            RunStore(out).__enter__()
    stale.close()


def test_foreign_and_corrupt_files_get_clear_errors(tmp_path, tiny_config):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(StoreError, match="not an advx run file"):
        run_exp(tiny_config, foreign)
    with pytest.raises(StoreError, match="not an advx run file"):
        advx.open_run(foreign)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(200))
    with pytest.raises(StoreError, match="not a valid HDF5 run file"):
        run_exp(tiny_config, corrupt)


def test_only_a_file_not_closed_cleanly_is_walked_for_broken_objects(tmp_path, tiny_config, monkeypatch):
    """A clean close marks the file (advx_writing 0) and the next open skips the walk; a writer
    that died (the mark still 1 on disk) or a file from before the mark is walked. That the walk
    finds an object a failed write left broken is the write-error test's (test_store_interrupts)."""
    from advx.evaluation.store import runstore

    out = tmp_path / "r.h5"
    run_exp(tiny_config, out)
    walked = []
    real = runstore.unreadable_object
    monkeypatch.setattr(runstore, "unreadable_object", lambda f: walked.append(1) or real(f))
    with h5py.File(out, "r") as f:
        assert f.attrs["advx_writing"] == 0
    with RunStore(out, mode="r"):
        pass
    assert walked == []
    script = ("import os, sys\nfrom advx.evaluation.store import RunStore\n"
              "s = RunStore(sys.argv[1]).__enter__()\nos._exit(0)  # dies holding the file open for writing")
    assert subprocess.run([sys.executable, "-c", script, str(out)], timeout=120).returncode == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["advx_writing"] == 1
    with RunStore(out, mode="r"):
        pass
    assert walked == [1]
    with h5py.File(out, "a") as f:  # a file from before the mark
        del f.attrs["advx_writing"]
    with RunStore(out, mode="r"):
        pass
    assert walked == [1, 1]
    with RunStore(out):  # a clean close marks it again
        pass
    with h5py.File(out, "r") as f:
        assert f.attrs["advx_writing"] == 0


def test_changed_config_needs_overwrite(tmp_path, tiny_config):
    out = tmp_path / "r.h5"
    run_exp(tiny_config, out)
    tiny_config["attack"][0]["eps"] = 0.2
    with pytest.raises(StoreError, match="different config"):
        run_exp(tiny_config, out)
    res = run_exp(tiny_config, out, overwrite=True)
    assert res.get("base", "none", "FGSM").arrays["linf"].max() == pytest.approx(0.2, abs=1e-6)


def test_models_are_cached_by_spec(tmp_path, tiny_config):
    run_exp(tiny_config, tmp_path / "a.h5", cache_dir=tmp_path / "cache")
    res = run_exp(tiny_config, tmp_path / "b.h5", cache_dir=tmp_path / "cache")
    assert res.models["base"]["cached"] is True or res.models["base"]["cached"] == 1
    assert len(list((tmp_path / "cache" / "models").glob("*.pt"))) == 1


def test_model_hash_covers_component_defaults(tiny_config):
    """A recipe spelled with its defaults and one leaving them out are the same model; the hashed
    spec holds every field, so a plugin changing a default cannot hand back a stale checkpoint."""
    from advx.training.models import _variant_spec

    def spec(augment):
        cfg = copy.deepcopy(tiny_config)
        cfg["train"] = [{"label": "mix", "augment": [augment]}]
        exp = advx.load_experiment(cfg)
        variant = next(v for v in exp.config.trains if v.label == "mix")
        return _variant_spec(exp.config, variant, None, exp.registry)

    implicit = spec({"name": "mixup"})
    assert implicit == spec({"name": "mixup", "alpha": 1.0})
    assert implicit["train"]["augment"][0]["params"]["alpha"] == 1.0
    assert implicit != spec({"name": "mixup", "alpha": 0.4})
    assert implicit["model"]["name"] == "digits-cnn"


def test_init_names_any_earlier_model_and_its_hash_keys_the_cache(tmp_path, tiny_config):
    """Paper 001 Table 5 fine-tunes each pretrained model adversarially: init = "mix" starts from
    the trained "mix" weights (not base's), and changing "mix" changes the fine-tuned model's hash."""
    from advx.training import models as models_mod
    from advx.training import load_checkpoint

    cfg = copy.deepcopy(tiny_config)
    cfg["train"] = [{"label": "mix", "augment": [{"name": "mixup"}]},
                    {"label": "ft", "init": "mix", "epochs": 1, "lr": 1e-12}]  # ~no step: stays at mix
    res = run_exp(cfg, tmp_path / "a.h5", cache_dir=tmp_path / "cache")
    exp = advx.load_experiment(cfg)
    ckpt = {v.label: load_checkpoint(res.models[v.label]["checkpoint"]) for v in exp.config.trains}
    w = next(k for k in ckpt["ft"] if k.endswith("weight"))
    assert torch.allclose(ckpt["ft"][w], ckpt["mix"][w], atol=1e-6)
    assert not torch.allclose(ckpt["ft"][w], ckpt["base"][w], atol=1e-3)
    spec = models_mod._variant_spec(exp.config, exp.config.trains[2], res.models["mix"]["hash"], exp.registry)
    assert spec["base"] == res.models["mix"]["hash"]
    cfg["train"][0]["augment"] = [{"name": "mixup", "alpha": 0.4}]
    res2 = run_exp(cfg, tmp_path / "b.h5", cache_dir=tmp_path / "cache")
    assert res2.models["ft"]["hash"] != res.models["ft"]["hash"]
    assert res2.models["base"]["hash"] == res.models["base"]["hash"]


def test_a_variant_fine_tunes_from_a_checkpoint_file(tmp_path, tiny_config):
    """``[[train]] checkpoint = "file.pt"`` starts the variant from those weights (a saved
    state dict, loaded with weights_only), and the file's content keys the variant's cache."""
    from advx.training import load_checkpoint, save_checkpoint

    cfg = copy.deepcopy(tiny_config)
    cfg["model"]["train"]["epochs"] = 1
    source = advx.load_experiment(cfg)
    first = run_exp(cfg, tmp_path / "a.h5", cache_dir=tmp_path / "cache")
    weights = load_checkpoint(first.models["base"]["checkpoint"])
    net = source.registry.create("model", "digits-cnn", {}).build(num_classes=10, in_channels=1)
    net.load_state_dict({k: v + 0.01 if v.is_floating_point() else v for k, v in weights.items()})
    save_checkpoint(net, tmp_path / "start.pt", {})
    cfg["train"] = [{"label": "ft", "checkpoint": str(tmp_path / "start.pt"), "epochs": 1, "lr": 1e-12}]
    res = run_exp(cfg, tmp_path / "b.h5", cache_dir=tmp_path / "cache")
    tuned = load_checkpoint(res.models["ft"]["checkpoint"])
    w = next(k for k in tuned if k.endswith("weight"))
    assert torch.allclose(tuned[w], net.state_dict()[w], atol=1e-6)  # ~no step at lr 1e-12: the file's weights
    assert not torch.allclose(tuned[w], weights[w], atol=1e-3)


def test_wrappers_take_the_models_mode_so_attacks_leave_it_in_eval():
    """A fresh wrapper Module says training=True; an attack that restores the mode it found on
    the wrapper then switched a dropout model into train mode for every later cell."""
    from torch import nn

    from advx.defense import DefendedClassifier
    from advx.evaluation.counting import CountingModel

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.5), nn.Linear(8, 3)).eval()
    x, y = torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    for wrapper in (CountingModel(model), DefendedClassifier(model, [])):
        assert not wrapper.training
        advx.create("attack", "pgd", eps=0.1, steps=2)(wrapper, x, y)
        assert not model.training and not wrapper.training
        with torch.no_grad():
            assert torch.equal(wrapper(x), wrapper(x))  # dropout off: deterministic


def test_cells_equal_direct_attack_calls_on_a_dropout_model(tmp_path, tiny_config):
    """End to end: on a model with dropout, every deterministic cell's predictions equal calling
    the attack directly on the trained model in eval mode (the wrapper-mode bug broke this for
    every cell after the first attack)."""
    tiny_config["model"] = {"name": "batchout-cifar", "size": 8, "train": {"epochs": 2, "batch_size": 64}}
    tiny_config.pop("defense")
    tiny_config["attack"] = [{"name": "fgsm", "eps": 0.1, "label": "FGSM"},
                             {"name": "deepfool", "steps": 2, "label": "DeepFool-2"}]
    tiny_config["evaluate"]["metrics"] = ["accuracy"]
    res = run_exp(tiny_config, tmp_path / "r.h5")
    attacks = advx.load_experiment(tiny_config).components["attacks"]  # the same specs, built anew
    model, data = res.context["models"]["base"], res.context["data"]
    assert not model.training
    x, y, bs = as_float(data.x_test), data.y_test, tiny_config["evaluate"]["batch_size"]
    for cell in res.cells:
        assert np.array_equal(cell.arrays["index"], res.test["index"])
        if cell.cell.mode == "clean":
            x_in = x
        else:
            attack = attacks[cell.cell.attack]
            x_in = torch.cat([attack(model, x[i:i + bs], y[i:i + bs]) for i in range(0, len(x), bs)])
            with torch.no_grad():  # samples wrong on clean input are not attacked: they keep x
                x_in = torch.where((model(x).argmax(1) == y).view(-1, 1, 1, 1), x_in, x)
        with torch.no_grad():
            direct = model(x_in).argmax(1).numpy()
        assert np.array_equal(cell.arrays["prediction"], direct), cell.cell
        assert not model.training


def test_resume_keeps_how_models_were_obtained_and_the_first_runs_warnings(tmp_path, tiny_config):
    out = tmp_path / "r.h5"
    run_exp(tiny_config, out)
    with h5py.File(out, "a") as f:
        before = dict(f["models"]["base"].attrs)
        f.attrs["warnings"] = json.dumps(["a check of a cell that finished before the crash"])
    run_exp(tiny_config, out)  # resume: everything is done, the model comes from the cache
    with h5py.File(out, "r") as f:
        after = dict(f["models"]["base"].attrs)
        warnings = json.loads(f.attrs["warnings"])
    assert before["cached"] == after["cached"] == False  # noqa: E712 (trained by the first run)
    assert after == before
    assert warnings[0] == "a check of a cell that finished before the crash"
    assert len(warnings) == len(set(warnings))


def test_an_unreadable_cached_checkpoint_is_retrained_with_a_warning(tmp_path, tiny_config):
    from advx.errors import AdvxWarning

    cache = tmp_path / "cache"
    first = run_exp(tiny_config, tmp_path / "a.h5", cache_dir=cache)
    ckpt = cache / "models" / f"{first.models['base']['hash']}.pt"
    for damage in (b"", ckpt.read_bytes()[:500]):  # a 0-byte file and a truncated one
        ckpt.write_bytes(damage)
        with pytest.warns(AdvxWarning, match="cannot be read.*retraining it"):
            again = run_exp(tiny_config, tmp_path / "b.h5", cache_dir=cache, overwrite=True)
        assert again.models["base"]["cached"] in (False, 0)
        assert again.get("base", "none", "FGSM").accuracy == first.get("base", "none", "FGSM").accuracy


def test_stale_checkpoint_temporaries_are_removed(tmp_path):
    from advx.training.models import remove_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"abc.{int(dead.stdout)}.tmp"
    fresh = tmp_path / f"def.{int(dead.stdout)}.tmp"   # just written: maybe another machine's write
    mine = tmp_path / f"ghi.{os.getpid()}.tmp"
    for p in (stale, fresh, mine):
        p.write_bytes(b"x")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    os.utime(mine, (time.time() - 3600, time.time() - 3600))
    remove_stale_temporaries(tmp_path)
    assert not stale.exists() and fresh.exists() and mine.exists()


def test_the_report_names_an_unfinished_cell_instead_of_a_nan(tmp_path, tiny_config):
    from advx.evaluation.report import all_tables, report_warnings

    out = tmp_path / "r.h5"
    run_exp(tiny_config, out)
    with h5py.File(out, "a") as f:  # what a crash mid-cell leaves: status running, part of the rows
        g = next(f["cells"][k] for k in f["cells"] if "PGD" in k and "none" in k)
        g.attrs["status"] = "running"
        g.attrs["n_done"] = 50
        del f["metrics"]  # a crashed run never got to its metric tables
    res = advx.open_run(out)
    notes = [w for w in report_warnings(res) if w.startswith("unfinished cell base/none/PGD-3 (oblivious): 50 of 120")]
    assert len(notes) == 1 and "re-run the same command" in notes[0]
    table = next(t for t in all_tables(res) if t.title.startswith("accuracy (%) — oblivious"))
    row = next(r for r in table.rows if r[:2] == ["base", "none"])
    assert row[table.columns.index("PGD-3")] is None  # shown as "—", never as a number of half the samples

