"""``pyconv demo``: train a small CNN made of pyconv layers on scikit-learn's bundled handwritten digits.

The data set (1,797 grey 8×8 images of the digits 0–9, from UCI, shipped inside scikit-learn: nothing is downloaded)
is split 80/20, stratified. The network is trained twice from the *same* initial weights and the *same* batch order:
once built from :mod:`pyconv.nn`, once from ``torch.nn``; both loss curves go into a PNG next to a grid of test digits
with pyconv's predictions. The two curves agree up to floating-point rounding, which is the end-to-end check that
pyconv's forward *and* backward kernels compute what torch's do.

    python -m pyconv demo                  # or: pyconv demo --epochs 20 --device cuda --out digits.png
"""
from __future__ import annotations

import dataclasses
import time
from types import ModuleType
from typing import Dict, List, Optional

import torch

from . import nn as pyconv_nn


class DigitsNet(torch.nn.Module):
    """8×8 → conv3·32 → conv3·64 → pool → 4×4 → conv3·64 → pool → 2×2 → linear 256 → 10 (≈57 k parameters)."""

    def __init__(self, layers: Optional[ModuleType] = None, num_classes: int = 10):
        super().__init__()
        L = pyconv_nn if layers is None else layers
        self.features = torch.nn.Sequential(
            L.Conv2d(1, 32, 3, padding=1), L.ReLU(inplace=True),
            L.Conv2d(32, 64, 3, padding=1), L.ReLU(inplace=True), L.MaxPool2d(2),
            L.Conv2d(64, 64, 3, padding=1), L.ReLU(inplace=True), L.MaxPool2d(2))
        self.classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64 * 2 * 2, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def load_digits(seed: int = 0, device="cpu", dtype=torch.float32):
    """(x_train, y_train, x_test, y_test, images_test): inputs (N, 1, 8, 8) standardised with the training set's mean
    and std; images_test are the raw 0–16 test images for display."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:  # pragma: no cover - scikit-learn is installed by scripts/install.sh
        raise RuntimeError("pyconv demo needs scikit-learn (pip install scikit-learn) for its bundled digits") from e
    digits = sk_load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(digits.images, digits.target, test_size=0.2, stratify=digits.target,
                                              random_state=seed)
    mean, std = x_tr.mean(), x_tr.std()

    def prep(a):
        return torch.as_tensor((a - mean) / std, dtype=dtype, device=device).unsqueeze(1)

    def labels(a):
        return torch.as_tensor(a, dtype=torch.long, device=device)

    return prep(x_tr), labels(y_tr), prep(x_te), labels(y_te), x_te


@dataclasses.dataclass
class RunResult:
    name: str
    step_losses: List[float]
    epoch_losses: List[float]
    epoch_seconds: List[float]
    test_accuracy: float
    predictions: torch.Tensor


def train(model: torch.nn.Module, data, *, epochs: int, batch_size: int, lr: float, seed: int, name: str,
          progress: bool = True) -> RunResult:
    """Adam on cross-entropy; the batch order comes from a generator seeded with `seed`, so two runs see the same
    batches."""
    x_tr, y_tr, x_te, y_te, _ = data
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = (len(x_tr) + batch_size - 1) // batch_size
    bar = _progress(epochs * steps_per_epoch, name, progress)
    step_losses, epoch_losses, epoch_seconds = [], [], []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x_tr), generator=gen).to(x_tr.device)
        t0 = time.perf_counter()
        total = 0.0
        for i in range(0, len(x_tr), batch_size):
            idx = order[i:i + batch_size]
            loss = torch.nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = loss.item()  # also synchronises, so the epoch time is the real one on a GPU
            step_losses.append(value)
            total += value * len(idx)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}")
        epoch_seconds.append(time.perf_counter() - t0)
        epoch_losses.append(total / len(x_tr))
    if bar is not None:
        bar.close()
    model.eval()
    with torch.no_grad():
        pred = model(x_te).argmax(1)
    acc = (pred == y_te).float().mean().item()
    return RunResult(name, step_losses, epoch_losses, epoch_seconds, acc, pred.cpu())


def _progress(total: int, name: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - progress is a nicety
        return None
    return tqdm(total=total, desc=f"{name:>8}", unit="step", leave=True)


def save_figure(path: str, runs: List[RunResult], images, labels, predictions) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 5), constrained_layout=True)
    grid = fig.add_gridspec(4, 10)
    ax = fig.add_subplot(grid[:, :5])
    styles = ["-", "--"]
    for run, style in zip(runs, styles):
        ax.plot(run.step_losses, style, label=f"{run.name} (test acc {100 * run.test_accuracy:.1f} %)", alpha=0.85)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy (batch)")
    ax.set_title("same initial weights, same batches")
    ax.legend()
    for k in range(20):
        a = fig.add_subplot(grid[k // 5, 5 + k % 5])
        a.imshow(images[k], cmap="gray_r", vmin=0, vmax=16)
        ok = int(predictions[k]) == int(labels[k])
        a.set_title(f"{int(predictions[k])}" + ("" if ok else f" (true {int(labels[k])})"), fontsize=9,
                    color="black" if ok else "red")
        a.axis("off")
    fig.suptitle("pyconv demo: a CNN on scikit-learn's 8×8 digits")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        from . import build_info

        return torch.device("cuda" if build_info()["cuda_available"] else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        from . import build_info

        info = build_info()
        if not info["cuda_available"]:
            raise RuntimeError("pyconv demo: --device cuda asked for, but " + (
                "this pyconv was built without CUDA kernels" if not info["cuda"] else "no CUDA device is visible"))
    return dev


def run(epochs: int = 15, batch_size: int = 64, lr: float = 3e-3, seed: int = 0, device: str = "auto",
        out: Optional[str] = "pyconv-demo.png", compare: bool = True, progress: bool = True,
        dtype: torch.dtype = torch.float32, print_fn=print) -> Dict[str, object]:
    """Runs the demo; returns a dict with the accuracies, per-epoch losses and times, the largest gap between the two
    loss curves and the PNG path. ``print_fn=None`` keeps it quiet.

    In float32 the two runs drift apart slowly: pyconv and torch round differently (different summation orders),
    and training amplifies any difference, so the curves agree to ~1e-3 rather than exactly. In float64 the
    rounding is 2⁻⁵³ and they agree to ~1e-10 over the whole run."""
    say = print_fn or (lambda *a, **k: None)
    dev = resolve_device(device)
    data = load_digits(seed, dev, dtype)
    torch.manual_seed(seed)
    net = DigitsNet().to(dev, dtype)
    reference = DigitsNet(layers=torch.nn).to(dev, dtype)
    reference.load_state_dict(net.state_dict())  # the same initial weights for both runs

    from ._summary import summary

    say(f"pyconv demo on {dev}: {len(data[0])} training and {len(data[2])} test digits (8×8), {epochs} epochs, "
        f"batch {batch_size}, Adam lr {lr}, {str(dtype).replace('torch.', '')}")
    say(summary(net, [1, 1, 8, 8], device=dev, dtype=dtype))
    runs = [train(net, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, name="pyconv",
                  progress=progress)]
    if compare:
        runs.append(train(reference, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, name="torch.nn",
                          progress=progress))
    result: Dict[str, object] = {"device": str(dev), "epochs": epochs, "dtype": str(dtype)}
    for r in runs:
        say(f"{r.name:>8}: test accuracy {100 * r.test_accuracy:.2f} %, final epoch loss {r.epoch_losses[-1]:.4f}, "
            f"{1000 * sum(r.epoch_seconds) / len(r.epoch_seconds):.0f} ms/epoch "
            f"(first {1000 * r.epoch_seconds[0]:.0f} ms)")
        result[r.name] = {"test_accuracy": r.test_accuracy, "epoch_losses": r.epoch_losses,
                          "epoch_seconds": r.epoch_seconds}
    if compare:
        gap = max(abs(a - b) for a, b in zip(runs[0].step_losses, runs[1].step_losses))
        result["max_loss_gap"] = gap
        say(f"largest difference between the two loss curves over {len(runs[0].step_losses)} steps: {gap:.2e}")
    if out:
        result["png"] = save_figure(out, runs, data[4], data[3].cpu(), runs[0].predictions)
        say(f"saved {out}")
    return result
