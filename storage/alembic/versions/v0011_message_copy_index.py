"""Bridged copies are found by their id in their channel without a scan.

Revision ID: 0011
Revises: 0010

A reply to copss's copy of a message (and a reaction on it) looks up the original by the
copy's channel and platform id; without an index every such look-up read the whole
``message_copy`` table, which grows with every bridged message.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the index (both engines)."""
    op.create_index(
        "ix_message_copy_channel_copy", "message_copy", ["channel_id", "copy_platform_message_id"]
    )


def downgrade() -> None:
    """Drop it again."""
    op.drop_index("ix_message_copy_channel_copy", "message_copy")
