"""The command line shared by every backend and tool: built once, from the
fields of ModelSpec, DataSource and TrainConfig (common.options).

Misuse gets one line on stderr and exit status 2, never a traceback; every
error class maps to its exit status in one place, `run_cli` (docs/design.md §10).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys

from common.config import TrainConfig, resolve
from common.data import REGISTRY, DataSource
from common.errors import EXIT_INTERRUPTED, DCGANError, UsageError
from common.options import flag, options, value_type
from common.signals import StoppedAtOnce
from common.spec import ModelSpec

NOT_FLAGS = ("out", "resume")  # what config_argv leaves to the caller


def seed(text: str) -> int:
    """An argparse type for --seed: NumPy's generators take 0 <= seed < 2**63 here."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer below 2**63, got {value}")
    return value


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its two-line usage errors cut to one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_options(parser, cls, title: str, skip=()) -> None:
    """One flag per option field of `cls`; unset flags are None (the preset's
    or the dataclass's default applies)."""
    group = parser.add_argument_group(title)
    for field in options(cls):
        if field.name in skip:
            continue
        meta, kind = field.metadata, value_type(field)
        names = [flag(field), *meta["aliases"]]
        if kind is bool and field.default is True:  # on unless --no-<flag>
            group.add_argument(*names, dest=field.name, action=argparse.BooleanOptionalAction, default=None,
                               help=meta["help"])
        elif kind is bool:
            group.add_argument(*names, dest=field.name, action="store_true", default=None, help=meta["help"])
        else:
            group.add_argument(*names, dest=field.name, type=kind, default=None, help=meta["help"],
                               choices=list(meta["choices"]) if meta["choices"] else None)


def add_model_args(parser) -> None:
    add_options(parser, ModelSpec, "model")


def add_data_args(parser, with_name: bool = True) -> None:
    add_options(parser, DataSource, "data", skip=() if with_name else ("name",))
    if with_name:  # the registry's names, known only now
        parser._option_string_actions["--data"].choices = list(REGISTRY)


def add_train_args(parser, framework: str) -> None:
    """Training and run flags (pytorch/examples' names accepted as aliases)."""
    add_options(parser, TrainConfig, "training and run (unset flags take the preset's value)")
    parser.set_defaults(out=f"runs/{framework}")
    group = parser.add_argument_group("this invocation")
    group.add_argument("--dry-run", action="store_true", help="one step only (--max-steps 1)")
    group.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar (default: on a terminal only)")


def given(args, cls) -> dict:
    """The settings of `cls` given on the command line (None where not)."""
    return {f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)}


def read_record(path, what: str, parse):
    """parse(the JSON) of a saved comparison's or sweep's record (compare.json,
    sweep.json), for --resume; a missing or damaged one is a UsageError (the file is kept)."""
    if not path.exists():
        raise UsageError(f"--resume: {path.parent} holds no {what} ({path.name} is missing)")
    try:
        return parse(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"--resume: {path} is not a readable {what} record ({type(e).__name__}: {e}); "
                         f"start a new {what} with another --out") from None


def resumed_config(args, base: TrainConfig, out, what: str) -> TrainConfig:
    """The saved config with the flags given now applied: only those a resumed run may change."""
    changes = {k: v for cls in (ModelSpec, DataSource, TrainConfig) for k, v in given(args, cls).items()
               if v is not None and k not in NOT_FLAGS}
    try:
        config = base.replace(**changes)
    except UsageError as e:
        raise UsageError(f"--resume: {e}") from None
    diffs = config.differences(base)
    if diffs:
        raise UsageError(f"--resume: {out} holds a {what} with another config ({'; '.join(diffs)})")
    return config


def spec_from_args(args) -> ModelSpec:
    return ModelSpec(**{k: v for k, v in given(args, ModelSpec).items() if v is not None})


def data_source_from_args(args, name: str | None = None) -> DataSource:
    values = {k: v for k, v in given(args, DataSource).items() if v is not None}
    return DataSource(**({**values, "name": name} if name else values))


def config_from_args(args) -> TrainConfig:
    """The preset's values, overridden by every flag given."""
    if getattr(args, "dry_run", False):
        args.max_steps = 1
    values = {**given(args, ModelSpec), **given(args, DataSource), **given(args, TrainConfig)}
    return resolve(values.pop("preset"), values)


def config_argv(config: TrainConfig) -> list[str]:
    """The flags that make config_from_args resolve to `config` again (out and resume aside)."""
    argv = []
    values = config.flat()
    for cls in (ModelSpec, DataSource, TrainConfig):
        for field in options(cls):
            value = values[field.name]
            if field.name in NOT_FLAGS or value is None:
                continue
            if isinstance(value, bool):  # a switch: given only when not its default
                if value != field.default:
                    argv.append(flag(field) if value else "--no-" + flag(field)[2:])
                continue
            argv += [flag(field), repr(value) if isinstance(value, float) else str(value)]
    return argv


def run_cli(prog: str, main, argv=None) -> int:
    """Call main(argv). A DCGANError (common.errors) is one line on stderr and
    its exit status (2 for bad input, 1 for data or files that cannot be had,
    3 for a diverged run); a second Ctrl-C, one line and 130."""
    try:
        return main(argv) or 0
    except DCGANError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt as e:
        print(f"{prog}: stopped at once; files already written stand", file=sys.stderr)
        return 128 + e.signum if isinstance(e, StoppedAtOnce) else EXIT_INTERRUPTED


def train_main(framework: str, train, argv=None) -> int:
    """`python -m dcgan_<fw>.train`: the same flags and checks for every backend."""
    parser = ArgumentParser(prog=f"python -m dcgan_{framework}.train",
                            description=f"Train the d2l DCGAN with the {framework} backend.")
    add_model_args(parser)
    add_data_args(parser)
    add_train_args(parser, framework)

    def main(argv):
        args = parser.parse_args(argv)
        summary = train(config_from_args(args), progress=args.progress)
        return 128 + signal.Signals[summary["signal"]] if summary["signal"] else 0

    return run_cli(parser.prog, main, argv)
