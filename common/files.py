"""Atomic file writes: a reader, or a run interrupted half-way, sees the old
file or the new one, never half of one. A place that cannot be written is one
line: a UsageError where the path is the problem (a directory, no permission,
a read-only file system), a DCGANError where the disk is (full)."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from common.errors import DCGANError, UsageError

_PATH_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR, errno.EEXIST,
                errno.ENAMETOOLONG}
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def write_error(path, error: OSError) -> DCGANError:
    """The one-line error for an OSError met while writing `path`."""
    reason = error.strerror or str(error)
    if error.errno in _PATH_ERRORS:
        return UsageError(f"cannot write {path}: {reason}")
    return DCGANError(f"cannot write {path}: {reason}")


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Yield a file opened beside `path`; rename it onto `path` when the block
    ends normally, delete it when the block raises. A path that is a directory,
    or that cannot be written, is a one-line error (above)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory; name a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual mode
    except OSError as e:
        raise write_error(path, e) from None
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except OSError as e:
        if e.errno in _PATH_ERRORS | _DISK_ERRORS:  # this write's trouble, not the caller's (a download's, say)
            raise write_error(path, e) from None
        raise
    finally:
        Path(tmp).unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
