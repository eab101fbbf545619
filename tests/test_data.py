"""Dataset loaders, each on small files the test writes (no network), and seeded splits."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

import advx
from advx.data.splits import fold_ids, stratified_split, stratified_subset
from advx.data.sources import DEBIAN_FASHION_MNIST
from advx.errors import DatasetNotFoundError


def write_idx(path, arr, gz=True):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def make_mnist(folder, n=30, gz=True):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), gz)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", np.arange(n) % 10, gz)
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n // 2, 28, 28)), gz)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", np.arange(n // 2) % 10, gz)


def test_digits_is_embedded():
    d = advx.create("dataset", "digits").load()
    assert d.x_train.shape[1:] == (1, 8, 8) and d.num_classes == 10
    assert len(d.y_train) + len(d.y_test) == 1797
    assert 0 <= float(d.x_train.min()) and float(d.x_train.max()) <= 1


def test_digits_read_without_scikit_learn_equal_load_digits():
    """The CSV is read directly (no sklearn import at a process's start): the same pixels and labels."""
    from sklearn.datasets import load_digits

    from advx.data.sources import _digits_arrays

    images, target = _digits_arrays()
    d = load_digits()
    assert np.array_equal(images, d.images) and np.array_equal(target, d.target)


@pytest.mark.parametrize("name,folder,gz", [("mnist", "MNIST/raw", True), ("fashion-mnist", "FashionMNIST/raw", False)])
def test_mnist_family_reads_torchvision_layout(tmp_path, name, folder, gz):
    make_mnist(tmp_path / folder, gz=gz)
    d = advx.create("dataset", name, root=str(tmp_path)).load()
    assert d.x_train.shape == (30, 1, 28, 28) and d.x_train.dtype == torch.uint8
    assert d.y_test.tolist() == [i % 10 for i in range(15)]


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_package(tmp_path):
    d = advx.create("dataset", "fashion-mnist", root=str(tmp_path / "empty")).load()
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert d.classes[0] == "T-shirt/top"


def test_missing_dataset_names_the_paths_and_the_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        advx.create("dataset", "mnist", root=str(tmp_path)).load()
    assert str(tmp_path / "MNIST" / "raw") in str(e.value) and "download = true" in str(e.value)
    with pytest.raises(DatasetNotFoundError, match="data_batch_1.*set data.download = true"):
        advx.create("dataset", "cifar10", root=str(tmp_path)).load()
    with pytest.raises(DatasetNotFoundError, match="train_32x32.mat not found"):
        advx.create("dataset", "svhn", root=str(tmp_path)).load()
    with pytest.raises(DatasetNotFoundError, match="one sub-folder per class"):
        advx.create("dataset", "imagefolder", root=str(tmp_path / "hist")).load()


def test_cifar10_from_torchvision_pickles(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(base / f, "wb") as fh:
            pickle.dump({"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}, fh)
    with open(base / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)
    d = advx.create("dataset", "cifar10", root=str(tmp_path)).load()
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32) and d.num_classes == 10
    assert d.classes[3] == "c3"


def test_svhn_from_mat_files(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    for split, n in [("train", 6), ("test", 3)]:
        scipy_io.savemat(tmp_path / f"{split}_32x32.mat", {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                                                            "y": (np.arange(n) % 10 + 1)[:, None]})
    d = advx.create("dataset", "svhn", root=str(tmp_path)).load()
    assert d.x_train.shape == (6, 3, 32, 32) and d.y_test.tolist() == [1, 2, 3]
    assert d.y_train.tolist() == [1, 2, 3, 4, 5, 6]


def test_imagefolder_hist_layout_with_resize(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("artifact", "benign", "malignant", "other"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / split / c / f"{i}.png")
    d = advx.create("dataset", "imagefolder", root=str(tmp_path), size=16).load()
    assert d.classes == ("artifact", "benign", "malignant", "other")
    assert d.x_train.shape == (12, 3, 16, 16) and d.y_test.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_hdf5_arrays(tmp_path):
    import h5py

    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"] = np.random.default_rng(0).random((50, 8, 8, 1)).astype(np.float32)  # NHWC is accepted
        f["y"] = np.arange(50) % 5
    d = advx.create("dataset", "hdf5", path=str(tmp_path / "d.h5"), test_fraction=0.2).load()
    assert d.x_train.shape[1:] == (1, 8, 8) and len(d.y_test) == 10 and d.num_classes == 5


def test_stratified_subsets_and_folds_are_seeded_and_balanced():
    y = torch.arange(1000) % 10
    a, b = stratified_subset(y, 0.1, 0), stratified_subset(y, 0.1, 0)
    assert torch.equal(a, b) and len(a) == 100
    assert torch.bincount(y[a]).tolist() == [10] * 10
    assert len(stratified_subset(y, 0.01, 0)) == 10
    rest, held = stratified_split(y, 0.2, 1)
    assert len(set(rest.tolist()) & set(held.tolist())) == 0 and len(held) == 200
    folds = fold_ids(y, 5, 0)
    assert torch.bincount(folds).tolist() == [200] * 5


@pytest.fixture
def mnist_mirror(tmp_path, monkeypatch):
    """Serve MNIST-layout files over HTTP on localhost and point torchvision's MNIST mirrors at it."""
    import functools
    import hashlib
    import http.server
    import threading

    import torchvision.datasets as tvd

    folder = tmp_path / "mirror"
    make_mnist(folder)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    resources = [(p.name, hashlib.md5(p.read_bytes()).hexdigest()) for p in sorted(folder.glob("*.gz"))]
    monkeypatch.setattr(tvd.MNIST, "mirrors", [f"http://127.0.0.1:{server.server_port}/"])
    monkeypatch.setattr(tvd.MNIST, "resources", resources)
    yield folder
    server.shutdown()


def test_download_flag_fetches_through_torchvision(tmp_path, mnist_mirror):
    root = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError):
        advx.create("dataset", "mnist", root=str(root)).load()  # download is off by default
    d = advx.create("dataset", "mnist", root=str(root), download=True).load()
    assert d.x_train.shape == (30, 1, 28, 28) and (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_failed_download_is_a_clear_error(tmp_path, mnist_mirror):
    for p in mnist_mirror.glob("t10k-*"):
        p.unlink()  # the server now answers 404 for the test split
    with pytest.raises(DatasetNotFoundError, match="downloading into .* failed"):
        advx.create("dataset", "mnist", root=str(tmp_path / "data"), download=True).load()


def test_stratified_subset_hits_the_requested_total():
    y = torch.tensor([0] * 7 + [1] * 3)
    assert len(stratified_subset(y, 0.5, 0)) == 5
    assert len(stratified_subset(torch.arange(1797) % 10, 0.3, 0)) == 539


def test_augmentations_are_seeded_and_keep_range():
    crop_flip = advx.create("training_augmentation", "crop-flip")
    x = torch.rand(8, 1, 28, 28)
    a = crop_flip.augment_images(x, torch.Generator().manual_seed(3))
    b = crop_flip.augment_images(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    assert a.min() >= 0 and a.max() <= 1


def test_imagefolder_without_a_split_warns_in_one_line(tmp_path, capsys):
    """A random split can put one patient's patches on both sides: say so (paper 003 splits HIST by patient)."""
    from PIL import Image

    from advx.cli import main
    from advx.errors import AdvxWarning

    rng = np.random.default_rng(0)
    for c in ("benign", "malignant"):
        (tmp_path / "img" / c).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "img" / c / f"{i}.png")
    with pytest.warns(AdvxWarning, match="no train/ and test/ sub-folders.*patient"):
        d = advx.create("dataset", "imagefolder", root=str(tmp_path / "img")).load()
    assert len(d.y_test) == 4
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\nname = "imagefolder"\nroot = "{tmp_path / "img"}"\n[model]\nname = "digits-cnn"\n'
                      '[model.train]\nepochs = 1\n[[attack]]\nname = "fgsm"\n[evaluate]\nmodes = ["oblivious"]\n')
    main_exit = pytest.raises(SystemExit)
    with main_exit as e:
        main(["run", str(config), "--out", str(tmp_path / "run.h5")])
    assert e.value.code == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "sub-folders" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: imagefolder:")


def test_imagefolder_expected_classes_are_named_and_checked(tmp_path):
    """fixer_hist.toml names HIST's four classes: a missing folder is reported with exactly that
    layout, and a folder with other classes is refused instead of silently relabelled."""
    from PIL import Image

    hist = ["artifact", "benign", "malignant", "other"]
    with pytest.raises(DatasetNotFoundError) as e:
        advx.create("dataset", "imagefolder", root=str(tmp_path / "hist"), classes=hist).load()
    assert f"{tmp_path / 'hist'}/train/{{artifact,benign,malignant,other}}/*.png" in str(e.value)
    for split in ("train", "test"):
        for c in ("benign", "tumour"):
            (tmp_path / "hist" / split / c).mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "hist" / split / c / "0.png")
    with pytest.raises(DatasetNotFoundError, match=r"class folders \['benign', 'tumour'\]; data.classes expects"):
        advx.create("dataset", "imagefolder", root=str(tmp_path / "hist"), classes=hist).load()
    d = advx.create("dataset", "imagefolder", root=str(tmp_path / "hist"), classes=["tumour", "benign"]).load()
    assert d.classes == ("tumour", "benign") and d.y_train.tolist() == [0, 1]  # label order follows classes


class _Shell:
    """A pickle that runs a shell command when loaded with plain pickle.load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_cifar_batches_are_read_without_running_code(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(base / f, "wb") as fh:  # real arrays, every protocol numpy may write
            pickle.dump({"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [0, 1]}, fh,
                        protocol=2 if f == "test_batch" else pickle.HIGHEST_PROTOCOL)
    assert advx.create("dataset", "cifar10", root=str(tmp_path)).load().x_test.shape == (2, 3, 32, 32)
    marker = tmp_path / "pwned"
    with open(base / "data_batch_1", "wb") as fh:
        pickle.dump({"data": _Shell(marker), "labels": [0]}, fh)
    with pytest.raises(DatasetNotFoundError, match=r"data_batch_1: not a CIFAR batch \(refusing to load posix.system"):
        advx.create("dataset", "cifar10", root=str(tmp_path)).load()
    assert not marker.exists()


def test_a_truncated_image_is_one_line_naming_it(tmp_path):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(np.full((16, 16, 3), 9, np.uint8)).save(tmp_path / c / f"{i}.png")
    bad = tmp_path / "b" / "1.png"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(DatasetNotFoundError, match=f"cannot read the image {bad}"):
        advx.create("dataset", "imagefolder", root=str(tmp_path)).load()
