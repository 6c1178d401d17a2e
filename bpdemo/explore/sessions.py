"""Per-page sessions: each browser tab has its own worked example and playground, and no other's.

A page asks for a session when it loads and sends its id with every request. The store is bounded
(`MAX_SESSIONS`; the least recently used idle session is closed first, and a session silent for
`SESSION_IDLE_SECONDS` is closed at the next opening), and a session runs one request at a time: a
second request while the first is running is answered at once with 429 rather than queued, so a
burst of requests can neither pile up nor disturb the state the first one is changing.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bpdemo.explore.schemas import MAX_SESSIONS, SESSION_IDLE_SECONDS


class ExploreError(Exception):
    """A request that cannot be answered as asked: an HTTP status and one line for the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Session:
    """One page's state: its worked example, its playground (None until set up), its lock."""

    id: str
    worked: Any
    playground: Any = None
    last_used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SessionStore:
    """At most `max_sessions` sessions by id, least recently used first out."""

    def __init__(
        self,
        new_worked: Callable[[], Any],
        max_sessions: int = MAX_SESSIONS,
        idle_seconds: float = SESSION_IDLE_SECONDS,
    ):
        self.new_worked = new_worked
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.guard = threading.Lock()  # around the dictionary only, never around the work

    def __len__(self) -> int:
        return len(self.sessions)

    def open(self) -> Session:
        """A new session; closes idle ones to stay within the bound (503 if every one is busy)."""
        session = Session(secrets.token_urlsafe(16), self.new_worked())
        with self.guard:
            now = time.monotonic()
            for old in [s for s in self.sessions.values() if now - s.last_used > self.idle_seconds]:
                if not old.lock.locked():
                    del self.sessions[old.id]
            while len(self.sessions) >= self.max_sessions:
                idle = next((s for s in self.sessions.values() if not s.lock.locked()), None)
                if idle is None:
                    raise ExploreError(503, "the explorer is busy with other pages: try again soon")
                del self.sessions[idle.id]
            self.sessions[session.id] = session
        return session

    @contextmanager
    def use(self, session_id: str) -> Iterator[Session]:
        """The session, held for one request: 404 if unknown, 429 if it is already running one."""
        with self.guard:
            session = self.sessions.get(session_id)
            if session is None:
                raise ExploreError(
                    404,
                    "this page's session has ended (too many pages open, or idle too long): "
                    "reload the page",
                )
            if not session.lock.acquire(blocking=False):
                raise ExploreError(
                    429, "busy: the previous request of this page has not been answered yet"
                )
            self.sessions.move_to_end(session_id)
        try:
            yield session
        finally:
            session.last_used = time.monotonic()
            session.lock.release()
