"""Live sessions in memory, bounded: at most ``max_sessions`` (the least recently used go first), each expiring after
``ttl`` seconds without a click, each at most ``max_events`` clicks. Thread-safe."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field


class SessionFull(ValueError):
    """A click past ``max_events``."""


@dataclass
class LiveSession:
    clicks: list = field(default_factory=list)
    user_id: int | None = None
    last_seen: float = 0.0


class SessionStore:
    def __init__(self, max_sessions: int, ttl: float, max_events: int, clock=time.monotonic):
        self.max_sessions, self.ttl, self.max_events, self.clock = max_sessions, ttl, max_events, clock
        self._sessions: OrderedDict[str, LiveSession] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self.evicted = {"size": 0, "ttl": 0}

    def _expire(self, now: float) -> None:
        while self._sessions:
            sid, s = next(iter(self._sessions.items()))
            if now - s.last_seen < self.ttl:
                break
            del self._sessions[sid]
            self.evicted["ttl"] += 1

    def append(self, session_id: str, click, user_id: int | None = None) -> LiveSession:
        """Add ``click`` to ``session_id`` (created if new); returns a copy of the session."""
        with self._lock:
            now = self.clock()
            self._expire(now)
            s = self._sessions.pop(session_id, None) or LiveSession()
            if len(s.clicks) >= self.max_events:
                self._sessions[session_id] = s
                raise SessionFull(f"session {session_id!r} already has {self.max_events} clicks (serve.max_events)")
            s.clicks.append(click)
            s.user_id = user_id if user_id is not None else s.user_id
            s.last_seen = now
            self._sessions[session_id] = s
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
                self.evicted["size"] += 1
            return LiveSession(list(s.clicks), s.user_id, s.last_seen)

    def get(self, session_id: str) -> LiveSession | None:
        with self._lock:
            self._expire(self.clock())
            s = self._sessions.get(session_id)
            return None if s is None else LiveSession(list(s.clicks), s.user_id, s.last_seen)

    def delete(self, session_id: str) -> bool:
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def __len__(self) -> int:
        with self._lock:
            self._expire(self.clock())
            return len(self._sessions)
