"""Per-process caches of what changes rarely (API keys, the tenant's access, models and prices, gateways),
with active invalidation (docs/architecture.md, "The hot path").

Every service that changes a cached thing calls `changed()` in its transaction, and every cache of an
app is flushed whole:
- in the process that made the change, when its transaction commits;
- in every other process, when PostgreSQL delivers the `NOTIFY waule_cache` that the same transaction
  sent (NOTIFY is transactional: it is delivered only if, and once, the change has committed). A listener
  thread per process holds its own connection for it and flushes everything whenever it (re)connects,
  since a notification may have been missed meanwhile.
CACHE_TTL_SECONDS bounds an entry's age in any case: the backstop if the channel is down (or a change
made by hand in SQL), and the only bound on SQLite, which has no channel (there it is at most 1 second)."""
from __future__ import annotations

import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Callable, Hashable

import sqlalchemy as sa
from flask import current_app, has_app_context

from app.core.transaction import on_commit
from app.extensions import db

log = logging.getLogger(__name__)
CHANNEL = "waule_cache"

_NOTIFY = sa.text("SELECT pg_notify(:channel, :what)")


class Cache:
    """One keyed cache. An entry lives at most `ttl` seconds and a flush drops them all; a value loaded
    while a flush happened is not kept (it may have been read before the change)."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[object, float]] = {}
        self._lock = threading.Lock()
        self._epoch = 0

    def get(self, key: Hashable, load: Callable[[], object], ttl: float) -> object:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry[1] < ttl:
            return entry[0]
        epoch = self._epoch
        value = load()
        if ttl > 0 and value is not None:  # misses are not kept: anyone could fill the cache with them
            with self._lock:
                if self._epoch == epoch:
                    self._entries[key] = (value, now)
        return value

    def flush(self) -> None:
        with self._lock:
            self._epoch += 1
            self._entries.clear()


class Caches:
    """The caches of one app (tests make an app per test; a process serves one)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._caches: dict[str, Cache] = {}
        self._listening_pid: int | None = None

    def named(self, name: str) -> Cache:
        cache = self._caches.get(name)
        if cache is None:
            cache = self._caches.setdefault(name, Cache())
        return cache

    def flush(self) -> None:
        for cache in list(self._caches.values()):
            cache.flush()

    def listen(self) -> None:
        """Make sure this process listens for other processes' changes (after a fork too)."""
        pid = os.getpid()
        if self._listening_pid == pid:
            return
        self._listening_pid = pid
        if self.database_url.startswith("postgresql"):
            listener_for(self.database_url).subscribe(self)


class Snapshot:
    """A read-only copy of a row's columns, safe to share between threads and requests (a session's
    object is neither). Its JSON values are plain dicts and lists: never change them."""

    def __init__(self, instance) -> None:
        for attr in sa.inspect(instance).mapper.column_attrs:
            object.__setattr__(self, attr.key, getattr(instance, attr.key))
        object.__setattr__(self, "_of", type(instance).__name__)

    def __setattr__(self, name, value):
        raise AttributeError(f"a cached {self._of} is read-only")

    def __repr__(self) -> str:
        return f"<{self._of} snapshot {getattr(self, 'id', '')}>"


def init_app(app) -> None:
    app.extensions["waule.cache"] = Caches(app.config["SQLALCHEMY_DATABASE_URI"])


def caches() -> Caches:
    return current_app.extensions["waule.cache"]


def cached(name: str, key: Hashable, load: Callable[[], object]):
    """`load()`'s value for `key` in the cache `name`, loaded at most once per CACHE_TTL_SECONDS and
    again after any `changed()` anywhere (None, a miss, is never kept). Values must be immutable
    snapshots: threads share them."""
    group = caches()
    group.listen()
    return group.named(name).get(key, load, current_app.config["CACHE_TTL_SECONDS"])


def flush_local() -> None:
    if has_app_context():
        caches().flush()


def changed(what: str) -> None:
    """Call inside the atomic() block that changes something a cache holds (a key, a tenant's access, a
    session, a model or price, a gateway, a webhook endpoint): every other process is told when it
    commits (never if it rolls back), and this one flushes then. `what` names it, for the channel's log."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_NOTIFY, {"channel": CHANNEL, "what": what})
    on_commit(flush_local)


class Listener:
    """LISTEN waule_cache on a connection of its own (never the pool's), in a daemon thread. Any
    notification flushes every subscribed app's caches; so does every (re)connect."""

    HEARTBEAT_SECONDS = 5.0

    def __init__(self, database_url: str) -> None:
        self.dsn = sa.engine.make_url(database_url).set(drivername="postgresql").render_as_string(
            hide_password=False)
        self.subscribers: weakref.WeakSet[Caches] = weakref.WeakSet()
        self.connected = threading.Event()
        self.connects = 0  # how many times it has (re)connected: tests wait on it
        self.backend_pid: int | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="waule-cache-listener", daemon=True)
        self._thread.start()

    def subscribe(self, group: Caches) -> None:
        with self._lock:
            self.subscribers.add(group)
        group.flush()  # anything cached before it was subscribed may have missed a notification

    def flush(self) -> None:
        with self._lock:
            groups = list(self.subscribers)
        for group in groups:
            group.flush()

    def _run(self) -> None:
        import psycopg2
        delay = 0.1
        while True:
            connection = None
            try:
                connection = psycopg2.connect(self.dsn, connect_timeout=5, application_name="waule-cache-listener",
                                              keepalives=1, keepalives_idle=10, keepalives_interval=5,
                                              keepalives_count=3)
                connection.autocommit = True
                with connection.cursor() as cursor:
                    cursor.execute(f"LISTEN {CHANNEL}")
                self.backend_pid = connection.get_backend_pid()
                self.flush()  # a notification may have been missed while it was not listening
                self.connects += 1
                self.connected.set()
                delay = 0.1
                self._listen(connection)
            except Exception as error:  # any failure: reconnect; the TTL bounds staleness meanwhile
                if self.connected.is_set():
                    log.warning("cache listener lost its connection (%s); reconnecting", error.__class__.__name__)
                self.connected.clear()
                self.flush()
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                if connection is not None:
                    try:
                        connection.close()
                    except Exception:
                        pass

    def _listen(self, connection) -> None:
        while True:
            readable, _, _ = select.select([connection], [], [], self.HEARTBEAT_SECONDS)
            if not readable:
                with connection.cursor() as cursor:  # a silent connection: prove it is still there
                    cursor.execute("SELECT 1")
            connection.poll()
            if connection.notifies:
                connection.notifies.clear()
                self.flush()


_listeners: dict[tuple[int, str], Listener] = {}
_listeners_lock = threading.Lock()


def listener_for(database_url: str) -> Listener:
    """This process's listener for a database (a forked child starts its own: threads do not survive a fork)."""
    key = (os.getpid(), database_url)
    with _listeners_lock:
        listener = _listeners.get(key)
        if listener is None:
            listener = _listeners[key] = Listener(database_url)
        return listener
