"""Channels remember where an unfinished Discord catch-up has to start again.

Revision ID: 0010
Revises: 0009

``channel.catch_up_after``: the message id after which a catch-up under way has not yet read
the channel's history; NULL when no catch-up is under way there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column (a plain ADD COLUMN on both engines: no table rebuild)."""
    op.add_column("channel", sa.Column("catch_up_after", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop the column again."""
    with op.batch_alter_table("channel") as batch:
        batch.drop_column("catch_up_after")
