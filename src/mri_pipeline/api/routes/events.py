"""``/api/events``: what happens to examinations, live (server-sent events), for the
screens. Each event names the examination by accession number and study UID, never by
the patient's name; ``Last-Event-ID`` (or ``?after=``) resumes after a reconnect."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from mri_pipeline.api.deps import PrincipalDep, RuntimeDep
from mri_pipeline.db.models import StepEvent
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.events import newest_event_id

router = APIRouter(prefix="/api/events", tags=["events"])
POLL_SECONDS = 0.5
KEEP_ALIVE_SECONDS = 15.0
BATCH = 200


def _after(runtime: Runtime, after: int | None) -> tuple[int, list[dict[str, Any]]]:
    """Events with an id above ``after`` (None: from now on) and the newest id seen."""
    with runtime.sessions() as session:
        if after is None:
            return newest_event_id(session), []
        rows = list(
            session.execute(
                select(StepEvent).where(StepEvent.id > after).order_by(StepEvent.id).limit(BATCH)
            ).scalars()
        )
        events = [
            {
                "id": e.id,
                "kind": e.kind,
                "accession_number": e.accession_number,
                "study_instance_uid": e.study_instance_uid,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "actor": e.actor,
                "at": e.at.isoformat(),
            }
            for e in rows
        ]
    return (rows[-1].id if rows else after), events


@router.get("", response_class=StreamingResponse)
async def get_events(
    request: Request,
    runtime: RuntimeDep,
    _principal: PrincipalDep,
    after: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """A text/event-stream of examination events as they are recorded."""
    if last_event_id is not None and last_event_id.isdigit():
        after = int(last_event_id)

    async def stream() -> AsyncIterator[str]:
        cursor, _ = await run_in_threadpool(_after, runtime, None) if after is None else (after, [])
        quiet = 0.0
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            cursor, events = await run_in_threadpool(_after, runtime, cursor)
            for event in events:
                yield f"id: {event['id']}\ndata: {json.dumps(event)}\n\n"
            quiet = 0.0 if events else quiet + POLL_SECONDS
            if quiet >= KEEP_ALIVE_SECONDS:
                yield ": keep-alive\n\n"
                quiet = 0.0
            if not events:
                await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
