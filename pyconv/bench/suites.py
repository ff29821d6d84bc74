"""The named benchmark suites.

* ``resnet50``, ``vgg16``, ``mobilenet_v2``: every distinct convolution of the network at 224×224 (found by running
  the pyconv.models builder on the meta device, so the table is the real network's, not a hand copy), each in three
  directions: fprop, dgrad (backward-input), wgrad (backward-weight).
* ``pool``: the ResNet stem's 3×3/2 max pool, VGG's 2×2 max pool, ResNet-50's global average pool; forward and
  backward.
* ``act``: relu, gelu, silu, hardswish over a large activation tensor; forward and backward.
* ``fused``: ResNet-50's distinct convolutions as conv + bias + ReLU and conv + bias + residual + ReLU:
  pyconv's fused-epilogue kernel against pyconv unfused and torch (cuDNN / oneDNN conv, then torch's add and relu).
* ``e2e``: one inference pass and one training step (SGD) of ResNet-18 at 224×224 and of the demo CNN, pyconv's
  model against the same model in torch.nn with the same weights.
"""
from __future__ import annotations

import copy
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from .. import functional as PF
from .. import models as pyconv_models
from .. import tuning
from .harness import Case, Setup

CONV_SUITES = ("resnet50", "vgg16", "mobilenet_v2")
SUITES = CONV_SUITES + ("fused", "pool", "act", "e2e")


def _tol(dtype: torch.dtype) -> float:
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:  # bench --tf32: TF32 rounding on both sides
        return 5e-3
    return {torch.float64: 1e-10, torch.float32: 1e-4}.get(dtype, 2e-2)


def _rand(shape, device, dtype, rotate: int, scale: float = 1.0) -> List[torch.Tensor]:
    """`rotate` independent random copies (never zeros); callers index them with the repetition number."""
    return [(torch.randn(shape, device=device, dtype=torch.float32) * scale).to(dtype) for _ in range(rotate)]


def distinct_convs(model_name: str) -> List[dict]:
    """Every distinct Conv2d geometry of a pyconv.models network at 224×224, in order of first use, with the module
    names that share it."""
    found: Dict[tuple, dict] = {}
    with torch.device("meta"):
        model = pyconv_models.BUILDERS[model_name]()
        names = {m: n for n, m in model.named_modules()}

        def hook(mod, inputs, out):
            x = inputs[0]
            key = (x.shape[1], x.shape[2], x.shape[3], mod.out_channels, mod.kernel_size, mod.stride, mod.padding,
                   mod.groups)
            entry = found.setdefault(key, dict(C=x.shape[1], H=x.shape[2], W=x.shape[3], K=mod.out_channels,
                                               R=mod.kernel_size[0], S=mod.kernel_size[1], stride=mod.stride[0],
                                               padding=mod.padding[0], groups=mod.groups, P=out.shape[2],
                                               Q=out.shape[3], layers=[]))
            entry["layers"].append(names[mod])

        handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        model(torch.empty(1, 3, 224, 224))
        for h in handles:
            h.remove()
    return list(found.values())


def _conv_label(g: dict) -> str:
    kind = "dw" if g["groups"] == g["C"] and g["groups"] > 1 else ""
    return (f"{g['layers'][0]} {g['R']}x{g['S']}/{g['stride']}{kind} {g['C']}->{g['K']} @{g['H']}"
            + (f" (x{len(g['layers'])})" if len(g["layers"]) > 1 else ""))


def conv_geometry(C, H, W, K, R, S, stride=1, padding=0, groups=1, name="conv") -> dict:
    """One convolution layer's geometry in the form distinct_convs() returns (for hand-made tables and tests)."""
    P, Q = (H + 2 * padding - R) // stride + 1, (W + 2 * padding - S) // stride + 1
    return dict(C=C, H=H, W=W, K=K, R=R, S=S, stride=stride, padding=padding, groups=groups, P=P, Q=Q, layers=[name])


def _conv_counts(g: dict, n: int):
    """FLOPs (2·N·K·P·Q·(C/groups)·R·S), element counts of x, w, y, and the row's shape record, for batch n."""
    crs = (g["C"] // g["groups"]) * g["R"] * g["S"]
    flops = 2.0 * n * g["K"] * g["P"] * g["Q"] * crs
    x_el, w_el, y_el = n * g["C"] * g["H"] * g["W"], g["K"] * crs, n * g["K"] * g["P"] * g["Q"]
    shape = dict(N=n, **{k: v for k, v in g.items() if k != "layers"}, layers=g["layers"])
    return flops, x_el, w_el, y_el, shape


def _layout(ts: List[torch.Tensor], channels_last: bool) -> List[torch.Tensor]:
    return [t.contiguous(memory_format=torch.channels_last) for t in ts] if channels_last else ts


def _conv_operands(g: dict, n: int, device, dtype, rotate: int, channels_last: bool = False):
    """Rotating random inputs and weights (scaled by 1/√(C·R·S/groups), so outputs stay O(1)); activations (and
    weights, as cuDNN's NHWC kernels want) in channels_last when asked."""
    grp = g["groups"]
    xs = _layout(_rand((n, g["C"], g["H"], g["W"]), device, dtype, rotate), channels_last)
    ws = _layout(_rand((g["K"], g["C"] // grp, g["R"], g["S"]), device, dtype, rotate,
                       (g["C"] // grp * g["R"] * g["S"]) ** -0.5), channels_last)
    return xs, ws


def conv_cases(suite: str, batches: Sequence[int], directions: Sequence[str], algos: Sequence[str],
               rotate: int, direct_max_flops: float, geometries: Optional[List[dict]] = None,
               channels_last: bool = False) -> List[Case]:
    """Cases for every geometry (default: the distinct convolutions of the pyconv.models network `suite`) × batch ×
    direction; providers: every pyconv rung in `algos` that takes the run's dtype, plus auto, and torch."""
    cases = []
    for g in (distinct_convs(suite) if geometries is None else geometries):
        for n in batches:
            flops, x_el, w_el, y_el, shape = _conv_counts(g, n)
            for d in directions:
                # minimal traffic per direction (elements; × element size at setup time): two operands in, one out
                elems = {"fprop": x_el + w_el + y_el, "dgrad": y_el + w_el + x_el, "wgrad": y_el + x_el + w_el}[d]
                cases.append(Case(suite, f"{_conv_label(g)} N={n}", "conv2d", d, flops, elems, shape,
                                  _conv_setup(g, n, d, algos, rotate, flops, direct_max_flops, channels_last)))
    return cases



def _tune_auto(direction: str, layout_src: torch.Tensor, x: torch.Tensor, w: torch.Tensor, st, pad, grp) -> None:
    """With pyconv.tuning enabled (``pyconv bench --tune``), settles what "auto" runs for this layer before it is
    timed — by timing every rung once, or from the tuning cache — as cudnn.benchmark does for the cuDNN rows; else
    "auto" is the heuristic."""
    if tuning.enabled():
        tuning.tune(direction, layout_src, list(x.shape), list(w.shape), st, pad, [1, 1], grp)

def _conv_setup(g, n, direction, algos, rotate, flops, direct_max_flops, channels_last=False) -> Callable:
    def setup(device: str, dtype: torch.dtype) -> Setup:
        ref_max_flops = 2e10 if device == "cuda" else 2e9
        st, pad, grp = [g["stride"]] * 2, [g["padding"]] * 2, g["groups"]
        xs, ws = _conv_operands(g, n, device, dtype, rotate, channels_last)
        gos = _layout(_rand((n, g["K"], g["P"], g["Q"]), device, dtype, rotate), channels_last)
        only = _algo_dtypes()
        ops = torch.ops.pyconv
        geo = (st, pad, [1, 1], grp)

        def ours(algo):
            if direction == "fprop":
                return lambda i: ops.conv2d_fprop(xs[i], ws[i], None, *geo, algo)
            if direction == "dgrad":
                return lambda i: ops.conv2d_dgrad(gos[i], ws[i], list(xs[i].shape), *geo, algo)
            return lambda i: ops.conv2d_wgrad(gos[i], xs[i], list(ws[i].shape), *geo, algo)

        def theirs(x, w, go):
            if direction == "fprop":
                return F.conv2d(x, w, None, st, pad, 1, grp)
            mask = [direction == "dgrad", direction == "wgrad", False]
            res = torch.ops.aten.convolution_backward(go, x, w, None, st, pad, [1, 1], False, [0, 0], grp, mask)
            return res[0] if direction == "dgrad" else res[1]

        _tune_auto(direction, xs[0] if direction == "fprop" else gos[0], xs[0], ws[0], st, pad, grp)
        providers, skipped = {}, {}
        for a in list(algos) + ["auto"]:
            if a == "direct" and flops > direct_max_flops:
                skipped[f"pyconv {a}"] = f"the reference rung is skipped above {direct_max_flops:.0e} FLOPs"
                continue
            if a == "depthwise" and g["C"] // grp != 1:
                continue  # not a rung of this shape (needs one input channel per group)
            if a == "winograd" and (g["R"] != 3 or g["S"] != 3 or g["stride"] != 1):
                continue  # not a rung of this shape (F(2x2, 3x3): 3x3, stride 1; the suites have no dilation)
            if a == "winograd" and direction == "wgrad":
                skipped[f"pyconv {a}"] = "F(2x2, 3x3) is fprop/dgrad: wgrad runs auto's rung under this name"
                continue
            if a in only and str(dtype).replace("torch.", "") not in only[a]:
                skipped[f"pyconv {a}"] = f"takes only {', '.join(only[a])}"
                continue
            if a.startswith("tensor_core_wgmma") and not _wgmma_ok(device):
                skipped[f"pyconv {a}"] = "needs compute capability 9.0 and an sm_90a build"
                continue
            if a.startswith("tensor_core") and dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
                skipped[f"pyconv {a}"] = "float32 on tensor cores is TF32: measured with --tf32 only"
                continue
            providers[f"pyconv {a}"] = ours(a)
        if device == "cuda":
            providers["cuDNN"] = lambda i: theirs(xs[i], ws[i], gos[i])

            def native(i):
                c = torch.backends.cudnn  # flags() resets every flag it is not given: pass the current ones on
                with c.flags(enabled=False, benchmark=c.benchmark, deterministic=c.deterministic,
                             allow_tf32=c.allow_tf32):
                    return theirs(xs[i], ws[i], gos[i])

            providers["torch native"] = native
            baseline = "cuDNN"
        else:
            providers["torch (oneDNN)"] = lambda i: theirs(xs[i], ws[i], gos[i])
            baseline = "torch (oneDNN)"
        # The reference: torch in float64 on the same inputs. float64 convolutions are slow (no tensor cores, native
        # kernels on the CPU), so above ref_max_flops the reference is torch in float32 with TF32 off instead.
        if flops <= ref_max_flops or dtype == torch.float64:
            ref = lambda: theirs(xs[0].double(), ws[0].double(), gos[0].double())  # noqa: E731
        else:
            ref = lambda: theirs(xs[0].float(), ws[0].float(), gos[0].float())  # noqa: E731
        return Setup(providers, ref, baseline, _tol(dtype), skipped)

    return setup


# ---- fused epilogues ------------------------------------------------------------------------------------------------


def _wgmma_ok(device: str) -> bool:
    """Whether the wgmma rung runs here: a compute capability 9.0 GPU and a pyconv built for sm_90a."""
    from .. import build_info

    return (device == "cuda" and torch.cuda.get_device_capability() == (9, 0)
            and "9.0a" in build_info()["arch_list"])


def _algo_dtypes() -> dict:
    from .. import build_info

    return build_info()["algorithm_dtypes"]["conv2d"]


def fused_cases(batches: Sequence[int], rotate: int, channels_last: bool = False) -> List[Case]:
    cases = []
    for g in distinct_convs("resnet50"):
        for n in batches:
            flops, x_el, w_el, y_el, shape = _conv_counts(g, n)
            for residual in (False, True):
                d = "conv+bias+add+relu" if residual else "conv+bias+relu"
                elems = x_el + w_el + y_el * (2 if residual else 1)
                cases.append(Case("fused", f"{_conv_label(g)} N={n}", "conv2d", d, flops, elems, shape,
                                  _fused_setup(g, n, residual, rotate, flops, channels_last)))
    return cases


def _fused_setup(g, n, residual, rotate, flops, channels_last=False) -> Callable:
    def setup(device: str, dtype: torch.dtype) -> Setup:
        st, pad, grp = [g["stride"]] * 2, [g["padding"]] * 2, g["groups"]
        xs, ws = _conv_operands(g, n, device, dtype, rotate, channels_last)
        bs = _rand((g["K"],), device, dtype, rotate)
        rs = (_layout(_rand((n, g["K"], g["P"], g["Q"]), device, dtype, rotate), channels_last) if residual
              else [None] * rotate)
        ops = torch.ops.pyconv
        _tune_auto("fprop", xs[0], xs[0], ws[0], st, pad, grp)

        def fused(i):
            return ops.conv2d_fprop_fused(xs[i], ws[i], bs[i], rs[i], st, pad, [1, 1], grp, "relu", 0.0, "auto")

        def unfused(i):
            y = ops.conv2d_fprop(xs[i], ws[i], bs[i], st, pad, [1, 1], grp, "auto")
            if residual:
                y = y + rs[i]
            return ops.activation(y, "relu", 0.0)

        def torch_ref(x, w, b, r):
            y = F.conv2d(x, w, b, st, pad, 1, grp)
            return torch.relu(y + r if r is not None else y)

        base = "cuDNN + torch" if device == "cuda" else "torch (oneDNN) + torch"
        providers = {"pyconv fused": fused, "pyconv unfused": unfused,
                     base: lambda i: torch_ref(xs[i], ws[i], bs[i], rs[i])}
        big = flops > (2e10 if device == "cuda" else 2e9)
        cast = (lambda t: None if t is None else t.float()) if big else (lambda t: None if t is None else t.double())
        ref = lambda: torch_ref(cast(xs[0]), cast(ws[0]), cast(bs[0]), cast(rs[0]))  # noqa: E731
        return Setup(providers, ref, base, _tol(dtype))

    return setup


# ---- pooling and activations (memory-bound: counted in bytes) ---------------------------------------------------------


def pool_cases(quick: bool, rotate: int) -> List[Case]:
    n = 8 if quick else 32
    specs = [
        ("max_pool2d 3x3/2 pad 1 (ResNet stem)", (n, 64, 112, 112), lambda t, m: m.max_pool2d(t, 3, 2, 1)),
        ("max_pool2d 2x2/2 (VGG)", (n, 128, 112, 112), lambda t, m: m.max_pool2d(t, 2)),
        ("global avg pool (ResNet-50)", (n, 2048, 7, 7), lambda t, m: m.adaptive_avg_pool2d(t, 1)),
    ]
    cases = []
    for name, shape, f in specs:
        for d in ("fwd", "bwd"):
            out_shape = f(torch.empty(shape, device="meta"), F).shape
            x_el, y_el = torch.Size(shape).numel(), out_shape.numel()
            elems = x_el + y_el if d == "fwd" else 2 * y_el + x_el  # bwd: grad_output (+ saved) in, grad_input out
            cases.append(Case("pool", f"{name} {tuple(shape)}", "pool", d, None, elems, dict(shape=list(shape)),
                              _elementwise_setup(shape, f, d, rotate)))
    return cases


def act_cases(quick: bool, rotate: int) -> List[Case]:
    shape = (8 if quick else 32, 64, 112, 112)
    specs = [("relu", lambda t, m: m.relu(t)), ("gelu", lambda t, m: m.gelu(t)), ("silu", lambda t, m: m.silu(t)),
             ("hardswish", lambda t, m: m.hardswish(t))]
    cases = []
    for name, f in specs:
        for d in ("fwd", "bwd"):
            el = torch.Size(shape).numel()
            cases.append(Case("act", f"{name} {tuple(shape)}", "act", d, None, 2 * el if d == "fwd" else 3 * el,
                              dict(shape=list(shape)), _elementwise_setup(shape, f, d, rotate)))
    return cases


def _elementwise_setup(shape, f, direction, rotate) -> Callable:
    def setup(device: str, dtype: torch.dtype) -> Setup:
        xs = _rand(shape, device, dtype, rotate)
        if direction == "fwd":
            ours = lambda i: f(xs[i], PF)  # noqa: E731
            theirs = lambda i: f(xs[i], F)  # noqa: E731
            ref = lambda: f(xs[0].double(), F)  # noqa: E731
        else:
            # backward through autograd: grad of a random projection, the same op graph for both providers
            xg = [x.detach().requires_grad_(True) for x in xs]
            gos = [torch.randn_like(f(x, F)) for x in xs]

            def make(m, xs_, gos_):
                outs = [f(x, m) for x in xs_]  # forward once, outside the timed region; backward is what is timed
                return lambda i: torch.autograd.grad(outs[i], xs_[i], gos_[i], retain_graph=True)[0]

            ours, theirs = make(PF, xg, gos), make(F, xg, gos)
            x64 = xs[0].double().requires_grad_(True)
            ref = lambda: torch.autograd.grad(f(x64, F), x64, gos[0].double())[0]  # noqa: E731
        base = "torch"
        return Setup({"pyconv": ours, base: theirs}, ref, base, _tol(dtype))

    return setup


# ---- end to end ------------------------------------------------------------------------------------------------------


def e2e_cases(quick: bool, rotate: int) -> List[Case]:
    from ..demo import DigitsNet

    specs = [("resnet18", lambda layers: pyconv_models.resnet18(layers=layers), (2 if quick else 32, 3, 224, 224)),
             ("demo CNN", lambda layers: DigitsNet(layers=layers), (64, 1, 8, 8))]
    cases = []
    for name, build, shape in specs:
        from .._summary import summary

        with torch.no_grad():
            s = summary(build(None), [1] + list(shape[1:]))
        fwd_flops = s.total_flops * shape[0]
        for d in ("infer", "train"):
            flops = fwd_flops * (3 if d == "train" else 1)  # backward ≈ 2 × forward (dgrad + wgrad)
            cases.append(Case("e2e", f"{name} {tuple(shape)}", "e2e", d, flops, s.total_bytes // 4 * shape[0],
                              dict(shape=list(shape)), _e2e_setup(build, shape, d, rotate)))
    return cases


def _e2e_setup(build, shape, direction, rotate) -> Callable:
    def setup(device: str, dtype: torch.dtype) -> Setup:
        torch.manual_seed(0)
        ours = build(None).to(device, dtype)
        theirs = build(torch.nn).to(device, dtype)
        theirs.load_state_dict(ours.state_dict())
        xs = _rand(shape, device, dtype, rotate)
        ys = [torch.randint(0, 10, (shape[0],), device=device) for _ in range(rotate)]
        models = {"pyconv": ours, "torch.nn": theirs}
        if direction == "infer":
            for m in models.values():
                m.eval()

            def provider(m):
                def fn(i):
                    with torch.no_grad():
                        return m(xs[i])
                return fn

            ref_model = copy.deepcopy(theirs).double()
            ref = lambda: ref_model(xs[0].double())  # noqa: E731
        else:
            # One SGD step (forward, loss, backward, update), in eval mode so BatchNorm's running statistics do not
            # drift between repetitions; checked by the loss of the first step.
            opts = {k: torch.optim.SGD(m.parameters(), lr=1e-4) for k, m in models.items()}
            for m in models.values():
                m.eval()

            def provider(m, opt):
                def fn(i):
                    opt.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(m(xs[i])[:, :10], ys[i])
                    loss.backward()
                    opt.step()
                    return loss.detach()
                return fn

            ref_model = copy.deepcopy(theirs).double().eval()
            ref = lambda: F.cross_entropy(ref_model(xs[0].double())[:, :10], ys[0])  # noqa: E731
            return Setup({"pyconv": provider(ours, opts["pyconv"]), "torch.nn": provider(theirs, opts["torch.nn"])},
                         ref, "torch.nn", max(_tol(dtype), 1e-3))
        return Setup({"pyconv": provider(ours), "torch.nn": provider(theirs)}, ref, "torch.nn", max(_tol(dtype), 1e-3))

    return setup
