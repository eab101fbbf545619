"""PCam and PathMNIST on tiny files in their real layouts: read through the registry, fetched with
``download = true`` from a localhost mirror, and every missing or malformed file a one-line error
naming it (exit 2 through the CLI)."""

import functools
import gzip
import http.server
import threading

import numpy as np
import pytest
import torch

import advx
from advx.cli import main
from advx.errors import DatasetNotFoundError

PCAM_NAME = "camelyonpatch_level_2_split_{}_{}.h5"


def make_pcam(folder, n_train=12, n_test=6, side=96):
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        with h5py.File(folder / PCAM_NAME.format(split, "x"), "w") as f:
            f["x"] = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
        with h5py.File(folder / PCAM_NAME.format(split, "y"), "w") as f:
            f["y"] = (np.arange(n) % 2).astype(np.uint8).reshape(n, 1, 1, 1)  # PCam's own label shape


def make_pathmnist(path, size=28, n=(18, 9, 9)):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, k in zip(("train", "val", "test"), n):
        arrays[f"{split}_images"] = rng.integers(0, 256, (k, size, size, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(k) % 9).reshape(k, 1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


@pytest.fixture
def mirror(tmp_path):
    """An HTTP server on localhost serving tmp_path/mirror, as Zenodo would."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_pcam_reads_torchvision_layout_and_resizes(tmp_path):
    make_pcam(tmp_path / "pcam")
    d = advx.create("dataset", "pcam", root=str(tmp_path)).load()
    assert d.x_train.shape == (12, 3, 96, 96) and d.x_train.dtype == torch.uint8
    assert d.y_test.tolist() == [0, 1, 0, 1, 0, 1] and d.classes == ("no tumour", "tumour")
    small = advx.create("dataset", "pcam", root=str(tmp_path), size=32).load()
    assert small.x_test.shape == (6, 3, 32, 32) and small.x_test.dtype == torch.uint8
    # bilinear + antialias of a constant image is that constant
    from advx.data.pathology import resize_uint8

    flat = torch.full((2, 3, 96, 96), 77, dtype=torch.uint8)
    assert torch.equal(resize_uint8(flat, 128), torch.full((2, 3, 128, 128), 77, dtype=torch.uint8))


def test_pcam_max_train_reads_a_seeded_subset(tmp_path):
    make_pcam(tmp_path / "pcam", n_train=40)
    full = advx.create("dataset", "pcam", root=str(tmp_path)).load()
    a = advx.create("dataset", "pcam", root=str(tmp_path), max_train=10, seed=3).load()
    b = advx.create("dataset", "pcam", root=str(tmp_path), max_train=10, seed=3).load()
    assert a.x_train.shape[0] == 10 and torch.equal(a.x_train, b.x_train)
    rows = [next(i for i in range(40) if torch.equal(full.x_train[i], img)) for img in a.x_train]
    assert rows == sorted(rows) and torch.equal(a.y_train, full.y_train[rows])
    assert len(a.y_test) == 6  # the test split is never subsampled


def test_pathmnist_reads_npz_without_pickle(tmp_path):
    make_pathmnist(tmp_path / "pathmnist.npz")
    d = advx.create("dataset", "pathmnist", root=str(tmp_path)).load()
    assert d.x_train.shape == (18, 3, 28, 28) and d.num_classes == 9 and d.classes[0] == "adipose"
    assert len(advx.create("dataset", "pathmnist", root=str(tmp_path), include_val=True).load().y_train) == 27
    make_pathmnist(tmp_path / "pathmnist_64.npz", size=64)
    assert advx.create("dataset", "pathmnist", root=str(tmp_path), size=64).load().x_test.shape == (9, 3, 64, 64)


def test_download_flag_fetches_from_a_mirror(tmp_path, mirror):
    folder, url = mirror
    make_pcam(tmp_path / "plain")
    for p in (tmp_path / "plain").iterdir():
        (folder / (p.name + ".gz")).write_bytes(gzip.compress(p.read_bytes()))
    make_pathmnist(folder / "pathmnist_128.npz", size=128)
    root = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError, match="download = true"):
        advx.create("dataset", "pcam", root=str(root)).load()  # off by default
    d = advx.create("dataset", "pcam", root=str(root), download=True, mirror=url).load()
    assert d.x_train.shape == (12, 3, 96, 96) and (root / "pcam" / PCAM_NAME.format("test", "y")).is_file()
    p = advx.create("dataset", "pathmnist", root=str(root), size=128, download=True, mirror=url).load()
    assert p.x_train.shape == (18, 3, 128, 128) and not list(root.glob("*.part"))


def test_failed_download_leaves_no_partial_file(tmp_path, mirror):
    _, url = mirror  # serves nothing: 404
    with pytest.raises(DatasetNotFoundError, match=r"downloading .*pathmnist.npz .*failed"):
        advx.create("dataset", "pathmnist", root=str(tmp_path / "d"), download=True, mirror=url).load()
    assert not list((tmp_path / "d").glob("*"))


def _pickled_npz(path):  # object arrays are pickles: loading them could run code
    make_pathmnist(path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path, **{**arrays, "train_images": np.array([object()], dtype=object)})


def _truncated(path):
    make_pathmnist(path)
    path.write_bytes(path.read_bytes()[:200])


def _no_test(path):
    make_pathmnist(path)
    with np.load(path) as z:
        kept = {k: z[k] for k in z.files if not k.startswith("test")}
    np.savez(path, **kept)


def _wrong_size(path):
    make_pathmnist(path, size=32)  # under the 28 px name


@pytest.mark.parametrize("make,needle", [
    (None, "pathmnist.npz not found"),
    (_pickled_npz, "not a readable MedMNIST .npz file"),
    (_truncated, "not a readable MedMNIST .npz file"),
    (_no_test, "lacks the array 'test_images'"),
    (_wrong_size, "must be N x 28 x 28 x 3 uint8"),
])
def test_bad_pathmnist_files_exit_2_naming_the_file(tmp_path, capsys, make, needle):
    path = tmp_path / "pathmnist.npz"
    if make:
        make(path)
    _exit_2_with(capsys, tmp_path, "pathmnist", needle, str(path))


def _pcam_truncated(folder):
    make_pcam(folder)
    p = folder / PCAM_NAME.format("train", "x")
    p.write_bytes(p.read_bytes()[:1000])


def _pcam_missing_test_y(folder):
    make_pcam(folder)
    (folder / PCAM_NAME.format("test", "y")).unlink()


def _pcam_wrong_key(folder):
    import h5py

    make_pcam(folder)
    with h5py.File(folder / PCAM_NAME.format("test", "x"), "w") as f:
        f["images"] = np.zeros((6, 96, 96, 3), np.uint8)


def _pcam_label_count(folder):
    import h5py

    make_pcam(folder)
    with h5py.File(folder / PCAM_NAME.format("test", "y"), "w") as f:
        f["y"] = np.zeros((5, 1, 1, 1), np.uint8)


@pytest.mark.parametrize("make,needle,name", [
    (_pcam_truncated, "not a readable HDF5 file", PCAM_NAME.format("train", "x")),
    (_pcam_missing_test_y, "not found", PCAM_NAME.format("test", "y")),
    (_pcam_wrong_key, "no dataset 'x'", PCAM_NAME.format("test", "x")),
    (_pcam_label_count, "holds 5 labels for 6 images", PCAM_NAME.format("test", "y")),
])
def test_bad_pcam_files_exit_2_naming_the_file(tmp_path, capsys, make, needle, name):
    make(tmp_path / "pcam")
    _exit_2_with(capsys, tmp_path, "pcam", needle, str(tmp_path / "pcam" / name))


def _exit_2_with(capsys, root, dataset, needle, path):
    config = root / "c.toml"
    config.write_text(f'[data]\nname = "{dataset}"\nroot = "{root}"\n[model]\nname = "digits-cnn"\n'
                      '[[attack]]\nname = "fgsm"\n')
    with pytest.raises(SystemExit) as e:
        main(["run", str(config), "--out", str(root / "run.h5")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err and path in err, err
    assert not (root / "run.h5").exists()
