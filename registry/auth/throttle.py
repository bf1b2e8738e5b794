"""Failed logins, counted per client: after ``limit`` failures within ``window`` seconds the
client's next attempts get 429 (with ``Retry-After``) until the oldest failure ages out.

Memory is bounded: at most ``max_clients`` clients are remembered (the least recently failing
one is forgotten first), each with at most ``limit`` timestamps. The count is per process: with
``--workers N`` a client gets up to N times the limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class LoginThrottle:
    def __init__(
        self,
        limit: int = 10,
        window: float = 60.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._mutex = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        with self._mutex:
            failures = self._failures.get(client)
            if failures is None:
                return None
            now = self._clock()
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if not failures:
                del self._failures[client]
                return None
            if len(failures) < self.limit:
                return None
            return max(1, math.ceil(failures[0] + self.window - now))

    def failed(self, client: str) -> None:
        with self._mutex:
            failures = self._failures.pop(client, None) or deque(maxlen=self.limit)
            failures.append(self._clock())
            self._failures[client] = failures
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)
