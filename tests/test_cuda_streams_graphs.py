"""Every op family on a non-default CUDA stream and inside a captured CUDA graph (GPU only: the CPU emulator has
neither streams nor graphs). The ops launch on torch's current stream (csrc/common/cuda_glue.h), and the strided
tensor-core dgrad forks onto pool streams and joins back (StreamFork), so each call must (a) give the eager result
when issued on a side stream, and (b) when captured into a CUDA graph, replay on new data written into the captured
inputs with the result eager gives on that data, bit for bit (every pyconv kernel is deterministic). Forward and
backward (autograd through the ops) are both captured. The tensor-core conv cases are in test_tensor_core.py
(test_side_stream_and_cuda_graph).
"""
import pytest
import torch

from conftest import HAS_CUDA
from pyconv import functional as PF

if not HAS_CUDA:
    pytest.skip("needs a CUDA GPU", allow_module_level=True)


def _conv(algo, groups=1, **kw):
    def make():
        c = 16
        x = torch.randn(4, c, 13, 12, device="cuda")
        w = torch.randn(c if groups == c else 24, c // groups, 3, 3, device="cuda") * 0.2
        b = torch.randn(w.shape[0], device="cuda")
        return [x, w, b]

    return make, lambda x, w, b: PF.conv2d(x, w, b, stride=2, padding=1, groups=groups, algo=algo, **kw)


def _unary(fn, shape=(4, 8, 13, 12)):
    return (lambda: [torch.randn(*shape, device="cuda")]), fn


CASES = {
    "conv_direct": _conv("direct"),
    "conv_implicit_gemm": _conv("implicit_gemm"),
    "conv_depthwise": _conv("depthwise", groups=16),
    "conv_fused_silu_residual": (lambda: _conv("implicit_gemm")[0]() + [torch.randn(4, 24, 7, 6, device="cuda")],
                                 lambda x, w, b, r: PF.conv2d(x, w, b, stride=2, padding=1, activation="silu",
                                                              residual=r, algo="implicit_gemm")),
    "max_pool2d": _unary(lambda x: PF.max_pool2d(x, 3, 2, 1)),
    "avg_pool2d": _unary(lambda x: PF.avg_pool2d(x, 3, 2, 1, count_include_pad=False)),
    "adaptive_avg_pool2d": _unary(lambda x: PF.adaptive_avg_pool2d(x, (5, 3))),
    "adaptive_max_pool2d": _unary(lambda x: PF.adaptive_max_pool2d(x, (5, 3))),
    "gelu": _unary(lambda x: PF.gelu(x)),
    "leaky_relu": _unary(lambda x: PF.leaky_relu(x, 0.1)),
}


def _step(fn, inputs, go):
    """Forward and backward of fn: (output, input gradients)."""
    for t in inputs:
        t.grad = None
    y = fn(*inputs)
    y.backward(go)
    return [y.detach().clone()] + [t.grad.clone() for t in inputs]


@pytest.mark.parametrize("name", list(CASES))
def test_side_stream_and_graph_replay(name):
    make, fn = CASES[name]
    torch.manual_seed(0)
    inputs = [t.requires_grad_() for t in make()]
    go = torch.randn_like(fn(*inputs))
    eager = _step(fn, inputs, go)

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        side = _step(fn, inputs, go)
    torch.cuda.current_stream().wait_stream(s)
    for a, b in zip(side, eager):
        assert torch.equal(a, b)

    # capture forward + backward; the gradients land in .grad tensors that the graph owns
    with torch.cuda.stream(s):  # warm-up on a side stream, as torch.cuda.graphs asks
        _step(fn, inputs, go)
    torch.cuda.current_stream().wait_stream(s)
    for t in inputs:
        t.grad = None
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        y = fn(*inputs)
        y.backward(go)
    with torch.no_grad():
        for t in inputs:
            t.copy_(torch.randn_like(t))
        go.copy_(torch.randn_like(go))
    g.replay()
    torch.cuda.synchronize()
    replay = [y.detach().clone()] + [t.grad.clone() for t in inputs]
    fresh = _step(fn, [t.detach().clone().requires_grad_() for t in inputs], go)
    for a, b in zip(replay, fresh):
        assert torch.equal(a, b)
    assert not torch.equal(replay[0], eager[0])  # the replay saw the new data
