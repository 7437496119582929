"""Stop after the current step when asked (docs/design.md §9).

While a `StopRequests` is active, the first SIGINT (Ctrl-C) or SIGTERM (what
schedulers, `timeout` and `docker stop` send) sets `requested` to the
signal's number; the loop sees it after the step in flight, writes a
checkpoint and ends, and the command exits 128 + that number (130, 143). A
second signal (other than the same one again within REPEAT_WINDOW) stops at once (`StoppedAtOnce`, a KeyboardInterrupt; the last
complete checkpoint stands; the exit status is 128 + the second signal's number). Outside the main thread (a notebook's worker, say) signals cannot
be caught, and they behave as usual.
"""

from __future__ import annotations

import signal
import time

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The same signal again this soon after the first is the same request, not a
# second one: a Ctrl-C reaches torchrun and its workers, and torchrun then
# passes it on to them (measured: milliseconds apart).
REPEAT_WINDOW = 0.5  # seconds


class StopRequests:
    def __init__(self):
        self.requested = None  # the signal number that asked, once one has
        self._previous = {}

    def __enter__(self):
        for signum in SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        return False

    @property
    def name(self) -> str | None:
        return None if self.requested is None else signal.Signals(self.requested).name

    def _handle(self, signum, frame):
        if self.requested is not None:  # a second request: stop now
            if signum == self.requested and time.monotonic() - self._at < REPEAT_WINDOW:
                return  # the same request again: a launcher (torchrun) passing on the terminal's Ctrl-C
            raise StoppedAtOnce(signum)
        self.requested, self._at = signum, time.monotonic()


class StoppedAtOnce(KeyboardInterrupt):
    """A second SIGINT or SIGTERM: stop now. The command exits 128 + its number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
