"""The errors every command turns into one line on stderr, and their exit
statuses, in one place (docs/design.md §10). `common.cli.run_cli` maps them.

    UsageError       2  bad input: a flag, or a file or directory named by one
    WeightsError     2  a weights file that does not fit what it is loaded into
    DataError        1  the data cannot be had: a failed download, a folder with no image
    CheckpointError  1  a run's checkpoint cannot be read or written (damaged, disk full)
    DivergedError    3  a loss became NaN or infinite: the run stopped, its last good checkpoint kept

and a run stopped by a signal after writing its checkpoint exits 128 + the
signal's number, the shell's convention: 130 for Ctrl-C (SIGINT), 143 for
SIGTERM (what schedulers, `timeout` and `docker stop` send).

A UsageError is also a ValueError, so library callers (ModelSpec(...),
TrainConfig(...)) can catch what they know.
"""

import signal

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_DIVERGED = 0, 1, 2, 3
EXIT_INTERRUPTED = 128 + signal.SIGINT   # 130
EXIT_TERMINATED = 128 + signal.SIGTERM   # 143


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


class CheckpointError(DCGANError):
    """A run's checkpoint cannot be read (damaged, of another version) or written (disk full)."""


class DivergedError(DCGANError):
    """A loss became NaN or infinite."""

    exit_status = EXIT_DIVERGED
