"""Demo data: today's referrals from ``worklist/demo_orders.yaml``, and demo logins."""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime, time, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mri_pipeline.db.models import ScheduledStep, User
from mri_pipeline.domain.access import Role
from mri_pipeline.domain.yaml_source import parse_yaml_model
from mri_pipeline.services.accounts import add_user, set_password
from mri_pipeline.services.orders import CreatedOrder, OrderDesk, OrderRequest, create_order


class DemoOrders(BaseModel):
    model_config = ConfigDict(extra="forbid")

    orders: list[OrderRequest]


def load_demo_orders(session: Session, desk: OrderDesk, path: Path) -> list[CreatedOrder]:
    """Book the demo referrals for today, unless demo patients already have steps today."""
    demo = parse_yaml_model(path.read_text(encoding="utf-8"), str(path), DemoOrders)
    ids = [order.patient.patient_id for order in demo.orders]
    today = datetime.combine(desk.local_now().date(), time.min)
    already = session.execute(
        select(func.count(ScheduledStep.id)).where(
            ScheduledStep.patient_id.in_(ids),
            ScheduledStep.start_at >= today,
            ScheduledStep.start_at < today + timedelta(days=1),
        )
    ).scalar_one()
    if already:
        return []
    # Booked across today's working day whatever the hour, so the demo always shows a day.
    stations = [node.ae_title for node in desk.nodes.scanners("MR")]
    created = []
    for index, order in enumerate(demo.orders):
        start = today.replace(hour=desk.day_start.hour) + timedelta(minutes=45 * (index // 2))
        booked = order.model_copy(
            update={
                "station": order.station or stations[index % len(stations)],
                "scheduled_date": today.date(),
                "scheduled_time": start.time(),
            }
        )
        created.append(create_order(session, desk, booked))
    return created


DEMO_USERS = (
    ("admin", Role.ADMIN, None),
    ("radiographer", Role.RADIOGRAPHER, None),
    ("okafor", Role.RADIOLOGIST, "rad.okafor"),
    ("lindqvist", Role.RADIOLOGIST, "rad.lindqvist"),
    ("moreau", Role.RADIOLOGIST, "rad.moreau"),
    ("brennan", Role.RADIOLOGIST, "rad.brennan"),
)


def ensure_demo_logins(session: Session, path: Path, at: datetime) -> dict[str, str]:
    """Demo users with generated passwords, kept in ``path`` (0600, under ``var/``):
    created once, read back at later starts. Returns user name → password."""
    known: dict[str, str] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for username, role, radiologist in DEMO_USERS:
        exists = session.scalar(select(User.id).where(User.username == username)) is not None
        if exists and username in known:
            continue
        password = secrets.token_urlsafe(12)
        if exists:
            set_password(session, username, password)
        else:
            add_user(session, username, role, at, radiologist_key=radiologist, password=password)
        known[username] = password
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(known, file, indent=2)
    return known
