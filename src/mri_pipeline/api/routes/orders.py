"""``/api/orders``: referrals in."""

from __future__ import annotations

from fastapi import APIRouter, status

from mri_pipeline.api.deps import RuntimeDep, SessionDep
from mri_pipeline.services.orders import CreatedOrder, OrderRequest, create_order

router = APIRouter(prefix="/api/orders", tags=["orders"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CreatedOrder)
def post_order(request: OrderRequest, session: SessionDep, runtime: RuntimeDep) -> CreatedOrder:
    """Accept a referral: choose protocol, priority and slot; the worklist item is ready at once."""
    with session.begin():
        created = create_order(session, runtime.desk, request)
    return created
