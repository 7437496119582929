"""The errors every command turns into one line on stderr (common.cli.run_cli).

They live apart from the modules that raise them so that `python -m
common.data` (where the module runs as __main__) raises the same classes the
CLI catches.
"""


class UsageError(Exception):
    """Bad input on the command line: one line, exit status 2."""


class DataError(Exception):
    """A data problem the user can act on (download, checksum, unreadable folder): one line, status 1."""


class WeightsError(ValueError):
    """A weight set or file that does not fit what it is loaded into."""
