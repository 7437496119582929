"""Each layer's output shape, per framework and side by side.

    python -m common.describe [--image-size 64 --n-g 64 ...]   the three frameworks, NCHW next to NHWC
    python -m dcgan_<fw>.model [--json]                          one framework

`describe(backend, spec)` is written once over the backend adapter. The side
by side table runs each framework in its own process (`python -m
dcgan_<fw>.model --json`), so no import order can crash it; a framework that
is missing or fails is named with the reason and the others are still shown.
"""

from __future__ import annotations

import json

import numpy as np

from common.backends import (FRAMEWORKS, Backend, install_hint, is_installed, load, parse_frameworks,
                             run_json)
from common.cli import ArgumentParser, add_model_args, run_cli, spec_from_args
from common.errors import UsageError
from common.options import flag, options
from common.spec import ModelSpec


def describe(backend: Backend, spec: ModelSpec) -> dict:
    """Per-layer output shapes of G and D on a batch of one (in the backend's
    own layout), and their sizes."""
    G, D = backend.model.build_generator(spec), backend.model.build_discriminator(spec)
    shapes = {}
    for name, net in (("G", G), ("D", D)):
        X = backend.to_tensor(np.zeros(spec.input_shape(name, 1), np.float32))
        shapes[name] = [list(map(int, o.shape)) for o in backend.model.layer_outputs(net, X)]
    version_key = FRAMEWORKS[backend.name].version_key
    return {"framework": backend.name, "version": backend.core.versions()[version_key],
            "layout": backend.layout, **shapes,
            "params": {"G": backend.model.count_params(G), "D": backend.model.count_params(D)}}


def model_argv(spec: ModelSpec) -> list[str]:
    """The flags that rebuild `spec`."""
    return [str(a) for f in options(ModelSpec) for a in (flag(f), getattr(spec, f.name))]


def backend_main(framework: str, argv=None) -> int:
    """`python -m dcgan_<fw>.model`: G's and D's per-layer output shapes."""
    parser = ArgumentParser(prog=f"python -m dcgan_{framework}.model",
                            description="Build G and D from the spec and print each layer's output shape.")
    add_model_args(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")

    def main(argv):
        args = parser.parse_args(argv)
        spec = spec_from_args(args)
        info = describe(load(framework), spec)
        if args.json:
            print(json.dumps(info))
            return 0
        for net in ("G", "D"):
            print(f"{net} ({framework}, {info['layout']}, {info['params'][net]:,} parameters)")
            for i, shape in enumerate(info[net]):
                print(f"  layer {i}: {tuple(shape)}")
        return 0

    return run_cli(parser.prog, main, argv)


def shape_table(spec, results: dict) -> str:
    """One row per layer: the spec's NCHW shape, then each framework's, with a
    check mark where the framework matches the spec in its own layout."""
    fws = list(results)
    header = ["net", "layer", "spec NCHW"] + [f"{fw} {results[fw]['layout']}" for fw in fws]
    rows = []
    for net in ("G", "D"):
        for i, shape in enumerate(spec.output_shapes(net, 1, "NCHW")):
            row = [net, str(i), str(shape)]
            for fw in fws:
                got = tuple(results[fw][net][i])
                want = spec.output_shapes(net, 1, results[fw]["layout"])[i]
                row.append(f"{got} {'ok' if got == want else 'MISMATCH'}")
            rows.append(row)
        params = [f"{results[fw]['params'][net]:,}" for fw in fws]
        rows.append([net, "params", f"{spec.num_params(net):,}"] + params)
    widths = [max(len(r[c]) for r in [header] + rows) for c in range(len(header))]
    fmt = lambda r: "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m common.describe", description=__doc__.split("\n\n")[0])
    add_model_args(parser)
    parser.add_argument("--frameworks", default="torch,tf,mx", help="comma-separated: torch,tf,mx")

    def run(argv):
        args = parser.parse_args(argv)
        spec = spec_from_args(args)
        try:
            fws = parse_frameworks(args.frameworks)
        except ValueError as e:
            raise UsageError(str(e)) from None
        results, problems = {}, []
        for fw in fws:
            if not is_installed(fw):
                problems.append(install_hint(fw))
                continue
            data, error = run_json(fw, "model", ["--json", *model_argv(spec)])
            if error:
                problems.append(f"{fw}: failed: {error}")
            else:
                results[fw] = data
        print(f"DCGAN {spec}\n")
        if results:
            print(shape_table(spec, results))
            print("\n" + ", ".join(f"{fw} {d['version']}" for fw, d in results.items()))
        for p in problems:
            print(p)
        ok = all(tuple(results[fw][n][i]) == s
                 for fw in results for n in ("G", "D")
                 for i, s in enumerate(spec.output_shapes(n, 1, results[fw]["layout"])))
        return 0 if results and ok and not problems else 1

    return run_cli(parser.prog, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
