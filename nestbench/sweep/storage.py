"""Where a study lives: SQLite beside the runs (one machine) or PostgreSQL (many machines).

Optuna's RDB storage holds trials, parameters, intermediate values and heartbeats. Two things are
added here: a reachability check that names host and port before anything is created, and a claim
lock (a file lock for SQLite, an advisory lock for PostgreSQL) so that "count the trials, then ask
for one" is atomic across every worker of a study, on every machine: exactly N trials, never N+1.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

from ..fileio import file_lock

SUPPORTED = ("sqlite", "postgresql")


class StorageError(ValueError):
    """A storage URL that cannot be used; the message says which server or file and why."""


def default_storage(runs: Path, study: str) -> str:
    return f"sqlite:///{(runs / 'sweeps' / study / 'study.db').resolve()}"


def scheme(url: str) -> str:
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def describe(url: str) -> str:
    """The URL with its password hidden (it goes to terminals, logs and ``best.gin``)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - unparsable URLs are reported by check_storage
        return url


def normalise(url: str) -> str:
    """``postgresql://`` means psycopg2 here (SQLAlchemy 2.1 would pick psycopg 3, which is not installed)."""
    return "postgresql+psycopg2://" + url.split("://", 1)[1] if url.startswith("postgresql://") else url


def check_storage(url: str) -> None:
    """Refuse an unusable URL before any folder, study or table exists."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(f"--storage {url!r}: not a database URL (sqlite:///path or postgresql://...)") from None
    if scheme(url) not in SUPPORTED:
        raise StorageError(f"--storage {describe(url)}: use sqlite:///<file> or postgresql://user@host:port/db")
    if scheme(url) == "postgresql":
        _check_postgres(url, parsed)


def _check_postgres(url: str, parsed) -> None:
    import sqlalchemy
    from sqlalchemy.exc import SQLAlchemyError

    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    engine = None
    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5}, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except (SQLAlchemyError, ImportError) as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise StorageError(
            f"cannot reach PostgreSQL at {where} (database '{parsed.database}'): {reason}\n"
            "  start the server or fix --storage; nothing was created"
        ) from None
    finally:
        if engine is not None:
            engine.dispose()


def engine_kwargs(url: str) -> dict:
    if scheme(url) == "sqlite":
        return {"connect_args": {"timeout": 60}}  # workers and trial processes write to one file
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}


def open_storage(url: str, *, heartbeat: int | None = None, max_retries: int = 3):
    """Optuna RDB storage. With ``heartbeat``, a trial not heard from for 3 heartbeats is failed and
    re-queued (same parameters) up to ``max_retries`` times: a crashed worker loses no trial."""
    import optuna

    quiet_optuna()
    kwargs = {}
    if heartbeat:
        kwargs = {
            "heartbeat_interval": heartbeat,
            "grace_period": 3 * heartbeat,
            "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retries),
        }
    if scheme(url) == "sqlite":
        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    with _schema_lock(url):
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url), **kwargs)


@contextlib.contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    """Optuna creates its tables on first use, and two processes doing so at once collide ("table
    already exists", duplicate enum types): the first creates them while the others wait."""
    if scheme(url) == "sqlite":
        with file_lock(url.split(":///", 1)[1] + ".schema.lock"):
            yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **engine_kwargs(url))
    try:
        with _advisory(engine, "nestbench-sweep:schema"):
            yield
    finally:
        engine.dispose()


@contextlib.contextmanager
def _advisory(engine, name: str) -> Iterator[None]:
    """A PostgreSQL session lock: held by this connection, released with it if the process dies."""
    import sqlalchemy

    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


def quiet_optuna() -> None:
    """Optuna marks the heartbeat API experimental and warns when heartbeats are used outside
    ``Study.optimize``; both are deliberate here (trials run in other processes), so say it once."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


class ClaimLock:
    """One claimant at a time per study, across threads, processes and (PostgreSQL) machines."""

    def __init__(self, url: str, study: str):
        self.url, self.study = url, study
        self._threads = threading.Lock()
        self._engine = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            if scheme(self.url) == "sqlite":
                with self._file_lock():
                    yield
            else:
                with self._advisory_lock():
                    yield

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        with file_lock(self.url.split(":///", 1)[1] + f".{self.study}.claim.lock"):
            yield

    @contextlib.contextmanager
    def _advisory_lock(self) -> Iterator[None]:
        import sqlalchemy

        if self._engine is None:
            self._engine = sqlalchemy.create_engine(self.url, **engine_kwargs(self.url))
        with _advisory(self._engine, f"nestbench-sweep:{self.study}"):
            yield

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
