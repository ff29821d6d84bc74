"""The ``pyconv`` command (also ``python -m pyconv``): ``info``, ``demo``, ``summary``, ``bench``."""
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


def _cmd_bench(args) -> int:
    import datetime
    import json as _json
    import os

    import torch

    from . import bench, build_info

    if args.compare:  # two earlier runs' JSON side by side: no benchmark runs
        runs = []
        for path in args.compare:
            try:
                with open(path) as f:
                    runs.append(_json.load(f))
            except (OSError, ValueError) as e:
                raise ValueError(f"--compare: cannot read {path}: {e}") from None
        old, new = runs
        print("\n".join(bench.report.compare_lines(old, new)))
        return 0
    suites = list(bench.SUITES)
    if args.suite:
        suites = [s for s in args.suite.split(",") if s]
    if args.op:
        wanted = set()
        for op in args.op.split(","):
            if op not in bench.OPS:
                raise ValueError(f"unknown --op {op!r}; choose from {', '.join(bench.OPS)}")
            wanted.update(bench.OPS[op])
        suites = [s for s in suites if s in wanted]
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() and build_info()["cuda"] else "cpu"
    batches = [int(b) for b in args.batch.split(",")] if args.batch else None
    env_stub = {"env": {"device": device, "device_name": bench.device_name(device),
                        "date": datetime.date.today().isoformat()}}
    json_path = args.json or os.path.join(args.out_dir, bench.default_stem(env_stub)) + ".json"
    os.makedirs(os.path.dirname(os.path.abspath(json_path)) or ".", exist_ok=True)
    if args.tune:
        from . import tuning

        tuning.enable()
    result = bench.run(suites, device, getattr(torch, args.dtype), quick=args.quick, reps=args.reps,
                       directions=args.dirs.split(","), batches=batches, progress=not args.no_progress,
                       tf32=args.tf32, channels_last=args.channels_last, checkpoint=json_path,
                       graph=args.graph, algos=args.algos.split(",") if args.algos else None)
    with open(json_path, "w") as f:
        _json.dump(result, f, indent=1)
    md = bench.write_markdown(result, args.md or os.path.splitext(json_path)[0] + ".md")
    png = None if args.no_plot else bench.write_plots(result, args.plot or os.path.splitext(json_path)[0] + ".png")
    rows = result["rows"]
    bad = [r for r in rows if r["status"] in ("wrong", "error")]
    print(f"{len(rows)} rows ({sum(r['status'] == 'ok' for r in rows)} timed, {len(bad)} failed the correctness "
          f"check, {sum(r['status'] == 'skipped' for r in rows)} skipped) on {result['env']['device_name']}")
    for line in bench.report.summary_lines(result):
        print("  " + line.strip("| ").replace(" | ", "  "))
    for r in bad:
        print(f"  FAILED {r['suite']} {r['case']} {r['direction']} {r['provider']}: "
              f"{r.get('error') or 'rel err %.1e' % r['rel_err']}")
    print(f"wrote {json_path}, {md}" + (f", {png}" if png else ""))
    if args.readme:
        if not bench.report.update_readme(result, os.path.relpath(json_path), args.readme):
            raise ValueError(f"{args.readme} has no {bench.report.README_START} … {bench.report.README_END} block")
        print(f"updated the results table in {args.readme}")
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

    from .bench import OPS, SUITES

    p = sub.add_parser("bench", help="benchmark pyconv's kernels against cuDNN / torch (JSON, markdown, plots)",
                       description="Times every pyconv kernel variant against torch (cuDNN and native on a GPU, "
                                   "oneDNN on the CPU) on named layer tables, after checking each result; writes "
                                   "JSON, a markdown table and plots.")
    p.add_argument("--suite", help=f"comma list from {', '.join(SUITES)} (default: all)")
    p.add_argument("--op", help=f"only the suites of these ops: {', '.join(OPS)}")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16", "float64"])
    p.add_argument("--dirs", default="fprop,dgrad,wgrad", help="convolution directions (default all three)")
    p.add_argument("--batch", help="comma list of batch sizes for the layer tables (default 1,8,32; GPU adds 128)")
    p.add_argument("--algos", help="comma list of the pyconv conv2d rungs to time (default: every one; "
                   "'pyconv auto' always runs)")
    p.add_argument("--reps", type=int, help="timed repetitions per provider (default 7 CPU, 50 GPU, 3 --quick)")
    p.add_argument("--quick", action="store_true", help="batch 1, small pooling/activation/e2e sizes, 3 reps")
    p.add_argument("--graph", action="store_true",
                   help="CUDA: time CUDA-graph replays (kernel time without host overhead; default: eager calls)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 in cuDNN/cuBLAS (recorded; default off)")
    p.add_argument("--tune", action="store_true",
                   help="pyconv.tuning on: 'pyconv auto' runs each layer's timed winner (cf. cudnn.benchmark, which the "
                        "cuDNN rows always use); default: auto's heuristic")
    p.add_argument("--channels-last", action="store_true",
                   help="convolution operands in channels_last (NHWC), the tensor-core rung's native layout")
    p.add_argument("--out-dir", default=".", help="where the default-named files go (default .)")
    p.add_argument("--json", help="JSON path (default <out-dir>/<device>-<date>.json)")
    p.add_argument("--md", help="markdown path (default: the JSON's with .md)")
    p.add_argument("--plot", help="PNG path (default: the JSON's with .png)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--readme", help="also put this run's summary table into that README's results block")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--compare", nargs=2, metavar=("OLD_JSON", "NEW_JSON"),
                   help="run nothing: print two earlier runs' geomean ratios per provider side by side (over the rows "
                        "both timed) and the `pyconv auto` rows that moved most")
    p.set_defaults(fn=_cmd_bench)
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
