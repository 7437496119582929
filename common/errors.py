"""The errors every command turns into one line on stderr, and their exit
statuses, in one place (docs/design.md §10). `common.cli.run_cli` maps them.

    UsageError     2  bad input: a flag, or a file or directory named by one
    WeightsError   2  a weights file that does not fit what it is loaded into
    DataError      1  the data cannot be had: a failed download, a folder with no image

A UsageError is also a ValueError, so library callers (ModelSpec(...),
TrainConfig(...)) can catch what they know.
"""

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention for Ctrl-C


class DCGANError(Exception):
    """Something the user can act on; `exit_status` is what the command exits with."""

    exit_status = EXIT_FAILURE


class UsageError(DCGANError, ValueError):
    """Bad input on the command line, or in the files it names."""

    exit_status = EXIT_USAGE


class WeightsError(UsageError):
    """A weight set or file that does not fit what it is loaded into."""


class DataError(DCGANError):
    """A data problem the user can act on (download, checksum, unreadable folder)."""
