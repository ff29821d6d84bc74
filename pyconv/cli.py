"""The ``pyconv`` command (also ``python -m pyconv``): ``info``, ``demo``, ``summary``."""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional


def _cmd_info(args) -> int:
    import torch

    import pyconv

    info = pyconv.build_info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"pyconv {info['version']}  (torch {info['torch_version']}, built against {info['torch_version_built']})")
    print(f"  compiler: {info['compiler']}")
    cuda = f"yes (CUDA {info['cuda_version']}, arch {info['arch_list']})" if info["cuda"] else "no"
    print(f"  CUDA kernels compiled: {cuda}")
    print(f"  CUDA emulator built:   {'yes' if info['emulator'] else 'no'}")
    print("devices:")
    print(f"  cpu: {torch.get_num_threads()} threads")
    if info["cuda_available"]:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            print(f"  cuda:{i}: {p.name}, sm_{p.major}{p.minor}, {p.total_memory / 2**30:.0f} GiB, "
                  f"{p.multi_processor_count} SMs")
    elif info["cuda"]:
        print("  cuda: none visible")
    print("algorithms (per device and op family; 'auto' picks the fastest that applies):")
    for device, families in info["algorithms"].items():
        for family, algos in families.items():
            print(f"  {device:<9} {family:<11} {', '.join(algos)}")
    print("ops: " + ", ".join(info["ops"]))
    return 0


def _cmd_demo(args) -> int:
    from . import demo

    import torch

    result = demo.run(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                      out=None if args.no_png else args.out, compare=not args.no_compare,
                      progress=not args.no_progress, dtype=getattr(torch, args.dtype))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def _parse_shape(text: str) -> List[int]:
    try:
        shape = [int(v) for v in text.replace("x", ",").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 1,3,224,224, got {text!r}") from None
    if not shape or any(s <= 0 for s in shape):
        raise argparse.ArgumentTypeError(f"expected positive sizes like 1,3,224,224, got {text!r}")
    return shape


_DEFAULT_SHAPES = {"lenet5": [1, 1, 28, 28], "unet": [1, 1, 64, 64]}


def _cmd_summary(args) -> int:
    from . import models
    from ._summary import summary

    kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
    model = models.BUILDERS[args.model](**kwargs)
    shape = args.input_shape or _DEFAULT_SHAPES.get(args.model, [1, 3, 224, 224])
    s = summary(model, shape)
    print(json.dumps(s.to_dict(), indent=2) if args.json else s)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import models

    parser = argparse.ArgumentParser(prog="pyconv", description="pyconv: hand-written CNN kernels for PyTorch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("info", help="build facts, devices and the algorithms available per op",
                       description="How pyconv was built, which devices it sees, which kernels each op has.")
    p.add_argument("--json", action="store_true", help="print pyconv.build_info() as JSON")
    p.set_defaults(fn=_cmd_info)

    p = sub.add_parser("demo", help="train a CNN of pyconv layers on scikit-learn's digits, compare with torch.nn",
                       description="Trains a small CNN built from pyconv layers on scikit-learn's bundled 8×8 "
                                   "digits (no download), then the same network from the same weights with torch.nn "
                                   "layers; reports test accuracy and time per epoch, saves a PNG of both loss "
                                   "curves and of test digits with predictions.")
    p.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    p.add_argument("--batch-size", type=int, default=64, help="mini-batch size (default 64)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed for the split, the weights and the batch order")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda[:N]")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="float64 makes the pyconv and torch.nn loss curves agree to ~1e-10 (default float32)")
    p.add_argument("--out", default="pyconv-demo.png", help="PNG to write (default pyconv-demo.png)")
    p.add_argument("--no-png", action="store_true", help="do not write the PNG")
    p.add_argument("--no-compare", action="store_true", help="skip the torch.nn run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.set_defaults(fn=_cmd_demo)

    p = sub.add_parser("summary", help="per-layer table of a model builder: shapes, parameters, FLOPs, bytes",
                       description="Builds one of pyconv.models (random weights) and prints pyconv.summary for it.")
    p.add_argument("model", choices=sorted(models.BUILDERS), help="model builder")
    p.add_argument("--input-shape", type=_parse_shape, help="N,C,H,W (default 1,3,224,224; lenet5 1,1,28,28; "
                                                             "unet 1,1,64,64)")
    p.add_argument("--num-classes", type=int, default=None, help="classes (default: the builder's)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(fn=_cmd_summary)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (RuntimeError, ValueError) as e:
        print(f"pyconv {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
