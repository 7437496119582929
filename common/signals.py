"""Stop after the current step when asked (docs/design.md §9).

While a `StopRequests` is active, the first Ctrl-C (SIGINT) sets `requested`;
the loop sees it after the step in flight, writes a checkpoint and ends. A
second Ctrl-C stops at once (KeyboardInterrupt). Outside the main thread (a
notebook's worker, say) signals cannot be caught, and Ctrl-C behaves as usual.
"""

from __future__ import annotations

import signal

SIGNALS = (signal.SIGINT,)


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

    def _handle(self, signum, frame):
        if self.requested is not None:  # a second request: stop now
            raise KeyboardInterrupt
        self.requested = signum
