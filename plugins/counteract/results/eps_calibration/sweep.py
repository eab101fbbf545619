"""PGD-10 (untargeted, step eps/4) robust accuracy of the full counteract run's F-MNIST LeNet-5 models on its
500 test images, over eps: how the calibrated stand-in's eps (20/255) was chosen (issue #35 item 4).
    python plugins/counteract/results/eps_calibration/sweep.py > plugins/counteract/results/eps_calibration/output.txt
"""
import torch, h5py, advx
from advx.data.bundle import as_float
from advx.training import load_checkpoint
from advx.training.models import build_model
torch.set_num_threads(1)
f = h5py.File("runs/counteract_fmnist_full.h5", "r", locking=False)
index = torch.as_tensor(f["test/index"][:])
ckpt = {k: f["models"][k].attrs["checkpoint"] for k in f["models"]}
exp = advx.load_experiment("examples/counteract_fmnist.toml", ["data.train_fraction=1.0"])
data = exp.components["dataset"].load()
x, y = as_float(data.x_test[index]), data.y_test[index]
for label, path in ckpt.items():
    net = build_model(exp.config, exp.registry, data, weights=False)
    net.load_state_dict(load_checkpoint(path)); net.eval()
    row = []
    for k in (8, 16, 18, 20, 22, 24, 32):
        atk = advx.create("attack", "pgd", eps=k / 255, alpha=k / 255 / 4, steps=10)
        xa = atk(net, x, y, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            row.append(f"{k}/255: {(net(xa).argmax(1) == y).float().mean() * 100:.1f}")
    with torch.no_grad():
        print(label, "clean", f"{(net(x).argmax(1) == y).float().mean() * 100:.1f}", " ".join(row), flush=True)
