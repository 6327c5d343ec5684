"""ingest: cursor, received studies, series, instances

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 19:11:15.816046
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "ingest_cursors",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "received_studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("orthanc_id", sa.String(length=64), nullable=False),
        sa.Column("accession_number", sa.String(length=16), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("patient_name", sa.String(length=324), nullable=True),
        sa.Column("procedure_pk", sa.Integer(), nullable=True),
        sa.Column("reconciliation", sa.String(length=16), nullable=False),
        sa.Column("reconciliation_note", sa.String(length=512), nullable=True),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("state_note", sa.String(length=256), nullable=True),
        sa.Column("completion_basis", sa.String(length=16), nullable=True),
        sa.Column("stable", sa.Boolean(), nullable=False),
        sa.Column("instance_count", sa.Integer(), nullable=False),
        sa.Column("first_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["procedure_pk"],
            ["requested_procedures.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_instance_uid"),
    )
    with op.batch_alter_table("received_studies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_received_studies_accession_number"), ["accession_number"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_received_studies_orthanc_id"), ["orthanc_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_received_studies_procedure_pk"), ["procedure_pk"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_received_studies_reconciliation"), ["reconciliation"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_received_studies_state"), ["state"], unique=False)

    op.create_table(
        "received_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_pk", sa.Integer(), nullable=False),
        sa.Column("series_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("orthanc_id", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.Column("series_description", sa.String(length=64), nullable=True),
        sa.Column("protocol_name", sa.String(length=64), nullable=True),
        sa.Column("instance_count", sa.Integer(), nullable=False),
        sa.Column("last_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_pk"],
            ["received_studies.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("series_instance_uid"),
    )
    with op.batch_alter_table("received_series", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_received_series_orthanc_id"), ["orthanc_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_received_series_study_pk"), ["study_pk"], unique=False)

    op.create_table(
        "received_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_pk", sa.Integer(), nullable=False),
        sa.Column("series_pk", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("orthanc_id", sa.String(length=64), nullable=False),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_pk"],
            ["received_series.id"],
        ),
        sa.ForeignKeyConstraint(
            ["study_pk"],
            ["received_studies.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sop_instance_uid"),
    )
    with op.batch_alter_table("received_instances", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_received_instances_series_pk"), ["series_pk"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_received_instances_study_pk"), ["study_pk"], unique=False
        )

    with op.batch_alter_table("step_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("study_instance_uid", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_step_events_study_instance_uid"), ["study_instance_uid"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("step_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_step_events_study_instance_uid"))
        batch_op.drop_column("study_instance_uid")

    with op.batch_alter_table("received_instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_received_instances_study_pk"))
        batch_op.drop_index(batch_op.f("ix_received_instances_series_pk"))

    op.drop_table("received_instances")
    with op.batch_alter_table("received_series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_received_series_study_pk"))
        batch_op.drop_index(batch_op.f("ix_received_series_orthanc_id"))

    op.drop_table("received_series")
    with op.batch_alter_table("received_studies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_received_studies_state"))
        batch_op.drop_index(batch_op.f("ix_received_studies_reconciliation"))
        batch_op.drop_index(batch_op.f("ix_received_studies_procedure_pk"))
        batch_op.drop_index(batch_op.f("ix_received_studies_orthanc_id"))
        batch_op.drop_index(batch_op.f("ix_received_studies_accession_number"))

    op.drop_table("received_studies")
    op.drop_table("ingest_cursors")
