"""qc results, series thumbnails, study verdict

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 20:44:17.483569
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "qc_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_pk", sa.Integer(), nullable=False),
        sa.Column("series_pk", sa.Integer(), nullable=True),
        sa.Column("series_description", sa.String(length=64), nullable=True),
        sa.Column("check", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("message", sa.String(length=512), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_pk"],
            ["received_series.id"],
        ),
        sa.ForeignKeyConstraint(
            ["study_pk"],
            ["received_studies.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("qc_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_qc_results_series_pk"), ["series_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_qc_results_study_pk"), ["study_pk"], unique=False)

    with op.batch_alter_table("received_series", schema=None) as batch_op:
        batch_op.add_column(sa.Column("qc_instance_count", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("qc_outcome", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("thumbnail_png", sa.LargeBinary(), nullable=True))

    with op.batch_alter_table("received_studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("qc_verdict", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("qc_summary", sa.String(length=512), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_received_studies_qc_verdict"), ["qc_verdict"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("received_studies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_received_studies_qc_verdict"))
        batch_op.drop_column("qc_summary")
        batch_op.drop_column("qc_verdict")

    with op.batch_alter_table("received_series", schema=None) as batch_op:
        batch_op.drop_column("thumbnail_png")
        batch_op.drop_column("qc_outcome")
        batch_op.drop_column("qc_instance_count")

    with op.batch_alter_table("qc_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_qc_results_study_pk"))
        batch_op.drop_index(batch_op.f("ix_qc_results_series_pk"))

    op.drop_table("qc_results")
