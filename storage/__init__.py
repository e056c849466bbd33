"""Persistence: SQLAlchemy models, engine set-up, migrations and repositories."""

from storage.engine import Database, StorageError, default_database_url

__all__ = ["Database", "StorageError", "default_database_url"]
