"""copss's Alembic scripts: ``env.py`` and the revisions in ``versions/`` (see
:mod:`storage.migrations`, which runs them)."""
