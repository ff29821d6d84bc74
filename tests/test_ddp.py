"""pyconv layers under DistributedDataParallel: two gloo processes on the CPU must produce the gradients and the
optimizer step of single-process training on the whole batch."""
import os
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import pyconv
from pyconv import models

BATCH = 8


def _model():
    torch.manual_seed(0)
    # BatchNorm would see per-process batch statistics (DDP does not sync them without SyncBatchNorm), so the
    # network is conv/pool/activation + Linear only: exactly what must match.
    return torch.nn.Sequential(
        pyconv.nn.Conv2d(3, 8, 3, padding=1), pyconv.nn.ReLU(), pyconv.nn.MaxPool2d(2),
        pyconv.nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2), pyconv.nn.SiLU(),
        pyconv.nn.ConvTranspose2d(16, 8, 2, stride=2), pyconv.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(8, 5)).double()


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(BATCH, 3, 12, 12, generator=g, dtype=torch.float64), torch.randint(0, 5, (BATCH,), generator=g)


def _step(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    opt.step()
    return grads, [p.detach().clone() for p in model.parameters()]


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        model = torch.nn.parallel.DistributedDataParallel(_model())
        x, y = _data()
        shard = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
        grads, params = _step(model, x[shard], y[shard])  # DDP averages the gradients over the processes
        torch.save({"grads": grads, "params": params}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch built without gloo")
@pytest.mark.skipif(sys.platform != "linux", reason="the file:// rendezvous is tested on Linux")
def test_ddp_two_processes_match_single_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)
    model = _model()
    x, y = _data()
    grads, params = _step(model, x, y)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for name, g, g_ddp in zip([n for n, _ in model.named_parameters()], grads, got["grads"]):
            torch.testing.assert_close(g_ddp, g, rtol=1e-10, atol=1e-12, msg=f"rank {rank} grad {name}")
        for name, p, p_ddp in zip([n for n, _ in model.named_parameters()], params, got["params"]):
            torch.testing.assert_close(p_ddp, p, rtol=1e-10, atol=1e-12, msg=f"rank {rank} param {name}")
    # The step did something (a test that cannot fail proves nothing).
    assert not torch.equal(params[0], _model()[0].weight)


def test_ddp_model_builder_wraps():
    """A model builder's network is accepted by DDP in a one-process group (parameters registered, buckets built)."""
    if not dist.is_gloo_available():
        pytest.skip("torch built without gloo")
    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        net = torch.nn.parallel.DistributedDataParallel(models.lenet5())
        out = net(torch.randn(2, 1, 28, 28))
        out.sum().backward()
        assert all(p.grad is not None for p in net.parameters())
    finally:
        dist.destroy_process_group()
