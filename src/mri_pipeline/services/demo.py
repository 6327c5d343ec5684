"""Demo data: today's referrals from ``worklist/demo_orders.yaml``."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mri_pipeline.db.models import ScheduledStep
from mri_pipeline.domain.yaml_source import parse_yaml_model
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
