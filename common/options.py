"""Settings are dataclass fields that carry their own command-line flag
(docs/design.md §4): the flag, its help, aliases and choices are written once,
on the field, and `common.cli` builds every parser from them.

    latent_dim: int = option(100, "size of the noise Z", "--nz")

gives `--latent-dim` (the field's name, `_` -> `-`, lower case), with the
alias `--nz`. `flag="--data"` overrides the derived name.
"""

from __future__ import annotations

import dataclasses


def option(default, help: str, *aliases: str, flag: str | None = None, choices=None, type=None):
    """A dataclass field that is also a command-line flag."""
    return dataclasses.field(default=default, metadata={
        "help": help, "aliases": aliases, "flag": flag, "choices": choices, "type": type})


def flag(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.lower().replace("_", "-")


def flag_of(cls, name: str) -> str:
    """The flag of `cls`'s field `name`, for messages: flag_of(ModelSpec, "n_G") -> "--n-g"."""
    return flag(next(f for f in dataclasses.fields(cls) if f.name == name))


def options(cls) -> list[dataclasses.Field]:
    """The fields of `cls` that are flags, in order."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def value_type(field: dataclasses.Field):
    """int, float, str or bool, from the metadata or the annotation ("int | None" -> int)."""
    if field.metadata.get("type"):
        return field.metadata["type"]
    annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    base = annotation.split("|")[0].strip()
    return {"int": int, "float": float, "str": str, "bool": bool}[base]
