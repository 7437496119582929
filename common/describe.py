"""`python -m common.describe`: build G and D from the spec in every framework and print each
layer's output shape side by side, NCHW next to NHWC.

Each framework runs in its own process (`python -m dcgan_<fw>.model --json`),
so no import order can crash the table; a framework that is missing or fails
is named with the reason and the others are still shown.
"""

from __future__ import annotations

from common.cli import ArgumentParser, add_model_args, run_cli, spec_from_args
from common.frameworks import (FRAMEWORKS, install_hint, is_installed, parse_frameworks,
                               run_json)


def model_args(spec) -> list[str]:
    return ["--image-size", spec.image_size, "--latent-dim", spec.latent_dim,
            "--n-g", spec.n_G, "--n-d", spec.n_D, "--channels", spec.channels,
            "--variant", spec.variant]


def shape_table(spec, results: dict) -> str:
    """One row per layer: the spec's NCHW shape, then each framework's, with a
    check mark where the framework matches the spec in its own layout."""
    fws = list(results)
    header = ["net", "layer", "spec NCHW"] + [f"{fw} {FRAMEWORKS[fw][3]}" for fw in fws]
    rows = []
    for net in ("G", "D"):
        for i, shape in enumerate(spec.output_shapes(net, 1, "NCHW")):
            row = [net, str(i), str(shape)]
            for fw in fws:
                got = tuple(results[fw][net][i])
                want = spec.output_shapes(net, 1, FRAMEWORKS[fw][3])[i]
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
            parser.error(str(e))
        results, problems = {}, []
        for fw in fws:
            if not is_installed(fw):
                problems.append(install_hint(fw))
                continue
            data, error = run_json(fw, "model", ["--json", *model_args(spec)])
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
                 for i, s in enumerate(spec.output_shapes(n, 1, FRAMEWORKS[fw][3])))
        return 0 if results and ok and not problems else 1

    return run_cli(parser.prog, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
