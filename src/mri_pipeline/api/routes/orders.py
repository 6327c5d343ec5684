"""``/api/orders``: referrals in."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel

from mri_pipeline.api.deps import RuntimeDep, SessionDep
from mri_pipeline.services.orders import OrderRequest, create_order

router = APIRouter(prefix="/api/orders", tags=["orders"])


class OrderCreated(BaseModel):
    accession_number: str
    requested_procedure_id: str
    sps_id: str
    study_instance_uid: str
    protocol_code: str
    priority: str
    station_ae_title: str
    scheduled_start: datetime
    not_indicated: str | None
    reason: str


@router.post("", status_code=status.HTTP_201_CREATED, response_model=OrderCreated)
def post_order(request: OrderRequest, session: SessionDep, runtime: RuntimeDep) -> OrderCreated:
    """Accept a referral: choose protocol, priority and slot; the worklist item is ready at once."""
    with session.begin():
        created = create_order(session, runtime.desk, request)
    return OrderCreated(**created.__dict__)
