"""The Alembic revisions, one per schema version from 9 on (``0009`` is the baseline)."""
