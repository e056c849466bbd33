"""Engine and session set-up for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage import sqlite_driver
from storage.private_files import private_file, private_folder


class StorageError(Exception):
    """The store cannot be opened or used (corrupt file, unreachable server, bad URL)."""


class StoreGone(StorageError, SQLAlchemyError):
    """The SQLite file copss opened was deleted or replaced while it ran. SQLite would go on
    writing to the deleted file (its connections keep it open), so every later transaction
    raises this instead; a store error like any other to the code that handles those."""


def default_database_path() -> Path:
    """``$COPSS_HOME/copss.db``, else ``$XDG_DATA_HOME/copss/copss.db`` (~/.local/share)."""
    home = os.environ.get("COPSS_HOME")
    if home:
        return Path(home) / "copss.db"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "copss" / "copss.db"


def default_database_url() -> str:
    """The SQLAlchemy URL of the default SQLite file."""
    return f"sqlite+aiosqlite:///{default_database_path()}"


def sqlite_url(path: Path | str) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{path}"


def _set_sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes a second process wait for
    # the lock instead of failing at once; SQLite leaves foreign keys off unless asked.
    # The driver's own transaction handling is switched off so that _begin_immediate decides.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _stop_once(dbapi_conn: Any, _record: Any) -> None:
    # aiosqlite's stop() queues an end marker for the connection's worker thread and returns a
    # future the thread resolves; a second stop() queues a marker no thread will read, and its
    # future never resolves. SQLAlchemy stops a connection whose graceful close was cancelled
    # (shutdown, a task cancelled mid-query) while that close, still running, stops it again
    # and waits: the process could then never exit. Every stop after the first returns the
    # first one's future, which the thread has resolved (or will) on its way out.
    driver = dbapi_conn.driver_connection
    first = driver.stop
    stopped: list[asyncio.Future[Any] | None] = []

    def stop() -> asyncio.Future[Any] | None:
        if not stopped:
            stopped.append(first())
        return stopped[0]

    driver.stop = stop


#: The execution option of an engine whose transactions only read (see Database.read).
READ_ONLY = "copss_read_only"


def _begin_immediate(conn: Any) -> None:
    # A deferred transaction that reads and then writes cannot wait for the lock: SQLite
    # answers "database is locked" at once when another connection wrote in between. Taking
    # the write lock at BEGIN makes every transaction wait its turn (busy_timeout) instead.
    # A transaction that only reads takes no lock: in WAL mode it never waits for the writer.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# Set inside Database.session(): a session opened within another (same task) must not wait
# for the turn its own outer session holds.
_in_session: ContextVar[bool] = ContextVar("copss_in_session", default=False)


class Database:
    """An async engine and its session factory. ``dialect`` is ``sqlite`` or ``postgresql``."""

    def __init__(self, url: str, *, echo: bool = False, create_folder: bool = True) -> None:
        """``create_folder``: make a SQLite file's missing folder (copss's own default data
        folder); when false a missing folder is a :class:`StorageError`, so that a store whose
        folder was removed is never replaced by an empty one."""
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StorageError(f"not a database URL: {url!r}") from exc
        parsed = _async_driver(parsed)
        self.url = parsed
        self.dialect = parsed.get_backend_name()
        if self.dialect not in _ASYNC_DRIVERS:
            raise StorageError(
                f"copss stores its data in SQLite or PostgreSQL, not {self.dialect}: "
                f"{self.describe()}"
            )
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            db = parsed.database
            if db and db != ":memory:":
                folder = Path(db).parent
                if not create_folder and not folder.exists():
                    raise StorageError(
                        f"the folder of database {db} does not exist: create it, or correct "
                        "storage.url (copss makes only its default data folder, so that a "
                        "store whose folder was removed is not replaced by an empty one)"
                    )
                try:
                    private_folder(folder)
                    private_file(Path(db))
                except OSError as exc:
                    raise StorageError(
                        f"cannot create database {db} or its folder: {exc.strerror}"
                    ) from exc
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: AsyncEngine = create_async_engine(parsed, **kwargs)
        except ImportError as exc:
            hint = " (pip install 'copss[postgres]')" if self.dialect == "postgresql" else ""
            raise StorageError(
                f"cannot use database URL {self.describe()}: its driver is not installed"
                f"{hint}: {exc}"
            ) from exc
        except ArgumentError as exc:
            raise StorageError(f"cannot use database URL {self.describe()}: {exc}") from exc
        if self.dialect == "sqlite":
            # One trip to each connection's thread per statement (see storage.sqlite_driver).
            event.listen(self.engine.sync_engine.dialect, "do_connect", sqlite_driver.on_connect)
            event.listen(self.engine.sync_engine, "connect", _set_sqlite_pragmas)
            event.listen(self.engine.sync_engine, "connect", _stop_once)
            event.listen(self.engine.sync_engine, "begin", _begin_immediate)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._readers = async_sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        # SQLite has one writer, and every transaction here takes the write lock at BEGIN.
        # Connections waiting for it poll (busy_timeout), which is not fair: under a burst a
        # waiter can miss every free moment for longer than busy_timeout and fail with
        # "database is locked". Taking turns in-process first keeps copss's own sessions in
        # order (FIFO); busy_timeout still covers other processes on the same file.
        self._turn = asyncio.Lock() if self.dialect == "sqlite" else None
        # The SQLite file as first opened (device, inode): see check_still_there.
        self._identity: tuple[int, int] | None = None

    @property
    def is_sqlite(self) -> bool:
        """Whether the store is a SQLite file."""
        return self.dialect == "sqlite"

    def _file(self) -> Path | None:
        if not self.is_sqlite or not self.url.database or self.url.database == ":memory:":
            return None
        return Path(self.url.database)

    def remember_file(self) -> None:
        """Note which file the store is (device and inode), once it is open: every later
        transaction checks that it is still that file (see :meth:`check_still_there`)."""
        path = self._file()
        if path is not None:
            info = path.stat()
            self._identity = (info.st_dev, info.st_ino)

    def check_still_there(self) -> None:
        """Raise :class:`StoreGone` when the SQLite file noted by :meth:`remember_file` was
        deleted (or its folder) or replaced by another file since."""
        path = self._file()
        if path is None or self._identity is None:
            return
        try:
            info = path.stat()
        except FileNotFoundError:
            raise StoreGone(
                f"database {path} is gone (deleted, or its folder, while copss ran); nothing "
                "is confirmed to the platforms until it is restored and copss restarted"
            ) from None
        except OSError:
            return  # cannot tell (e.g. a permission problem): the store's own errors will say
        if (info.st_dev, info.st_ino) != self._identity:
            raise StoreGone(
                f"database {path} was replaced by another file while copss ran; nothing is "
                "confirmed to the platforms until copss is restarted"
            )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on error. On SQLite
        sessions take turns (first come, first served). Raises :class:`StoreGone` when the
        SQLite file was deleted or replaced since :meth:`remember_file`."""
        self.check_still_there()
        if self._turn is None or _in_session.get():
            async with self._transaction() as session:
                yield session
            return
        async with self._turn:
            mark = _in_session.set(True)
            try:
                async with self._transaction() as session:
                    yield session
            finally:
                _in_session.reset(mark)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session that only reads (it is rolled back at the end): on SQLite it neither
        waits for the writing sessions nor holds them up (in WAL mode a reader sees the last
        commit and never waits for the writer). Raises :class:`StoreGone` like
        :meth:`session`."""
        self.check_still_there()
        if self._turn is None:
            async with self._transaction() as session:
                yield session
            return
        async with self._readers() as session:
            try:
                yield session
            finally:
                await session.rollback()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def check(self) -> None:
        """Open the store once, turning driver errors into one clear :class:`StorageError`."""
        try:
            async with self.engine.connect() as conn:
                if self.is_sqlite:
                    result = await conn.exec_driver_sql("PRAGMA quick_check")
                    verdict = result.scalar()
                    if verdict != "ok":
                        raise StorageError(f"database {self.describe()} is damaged: {verdict}")
                else:
                    await conn.exec_driver_sql("SELECT 1")
        except (DBAPIError, SQLAlchemyError, OSError) as exc:
            blocked = self._unwritable_folder()
            if blocked is not None:
                raise StorageError(
                    f"cannot write to database {self.where()}: {_reason(exc)} (its folder "
                    f"{blocked} is read-only, and SQLite keeps its -wal and -shm files beside "
                    "it)"
                ) from exc
            raise StorageError(f"cannot open database {self.describe()}: {_reason(exc)}") from exc

    async def check_writable(self) -> None:
        """Make sure the store takes writes, with a real write that is rolled back: a row in the
        inbox, the first thing copss writes for every event. A read-only SQLite file (or one in a
        read-only folder), a PostgreSQL role without write rights or a read-only server raise
        one :class:`StorageError` saying so, instead of every event failing later. Needs the
        migrated schema."""
        # Imported here: the engine module is imported by the models' users, never the reverse.
        from storage.models import InboxEvent

        probe = insert(InboxEvent).values(
            dedup_key="copss:write-probe", platform=None, payload={}, attempts=0
        )
        try:
            async with self.engine.connect() as conn:
                transaction = await conn.begin()
                try:
                    await conn.execute(probe)
                finally:
                    await transaction.rollback()
        except (DBAPIError, SQLAlchemyError, OSError) as exc:
            raise StorageError(f"cannot write to database {self.where()}: {_reason(exc)}") from exc

    def where(self) -> str:
        """The SQLite file, else the URL without its password: what messages name."""
        if self.is_sqlite and self.url.database and self.url.database != ":memory:":
            return self.url.database
        return self.describe()

    def _unwritable_folder(self) -> Path | None:
        # A SQLite file in WAL mode cannot even be read when its folder does not let SQLite
        # create the -wal and -shm files; os.access also sees read-only mounts and, for root,
        # the immutable attribute.
        if not self.is_sqlite or not self.url.database or self.url.database == ":memory:":
            return None
        folder = Path(self.url.database).parent
        if folder.is_dir() and not os.access(folder, os.W_OK):
            return folder
        return None

    def describe(self) -> str:
        """The URL without its password, for messages and logs."""
        return self.url.render_as_string(hide_password=True)

    async def lock_connection(self) -> AsyncConnection:
        """A connection of its own in autocommit mode, for PostgreSQL session advisory locks:
        no transaction stays open, and the locks last as long as the connection (closing it,
        or the process dying, frees them). Close it with :func:`close_quietly`."""
        conn = await self.engine.connect()
        return await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def close(self) -> None:
        """Dispose of the connection pool."""
        await self.engine.dispose()


#: copss runs on asyncio: a URL naming no driver (or a blocking one) gets the async driver.
_ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}


def _async_driver(url: URL) -> URL:
    backend = url.get_backend_name()
    driver = _ASYNC_DRIVERS.get(backend)
    if driver is None or url.get_driver_name() == driver:
        return url
    return url.set(drivername=f"{backend}+{driver}")


async def close_quietly(conn: AsyncConnection, what: str) -> None:
    """Close a connection that may be broken (its server gone): invalidated first, so that
    it is not handed back to the pool; a failure is logged at debug level only."""
    try:
        await conn.invalidate()
        await conn.close()
    except Exception as exc:  # closing a broken connection may fail too
        logging.getLogger(__name__).debug("closing %s failed: %s", what, exc)


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]
