"""Builds the running system from ``Settings``: database, reference data, services."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mri_pipeline.config import Settings
from mri_pipeline.db.engine import make_engine, make_session_factory
from mri_pipeline.db.migrate import upgrade
from mri_pipeline.dicom.mpps import MppsHandlers
from mri_pipeline.domain.nodes import NodeTable
from mri_pipeline.domain.protocols import Catalogue
from mri_pipeline.domain.radiologists import RadiologistTable
from mri_pipeline.orthanc import OrthancClient, orthanc_credentials
from mri_pipeline.services.accounts import RecentCallers
from mri_pipeline.services.audit import AuditTrail
from mri_pipeline.services.ingest import Ingest
from mri_pipeline.services.orders import Clock, OrderDesk, offer_replacement_step
from mri_pipeline.services.radiologists import Roster, sync_radiologists
from mri_pipeline.services.reading import ReadingRoom
from mri_pipeline.services.reading_board import ReadingBoard
from mri_pipeline.services.reference import load_catalogue, load_node_table, load_radiologists
from mri_pipeline.services.routing import RoutingDesk
from mri_pipeline.services.worklist import WorklistFinder


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    catalogue: Catalogue
    nodes: NodeTable
    desk: OrderDesk
    finder: WorklistFinder
    mpps: MppsHandlers
    radiologists: RadiologistTable
    roster: Roster
    audit: AuditTrail
    clock: Clock = system_clock
    # The open assignments every reading list of this process is drawn from.
    reading_board: ReadingBoard = field(default_factory=ReadingBoard)
    # Who recent tokens and session cookies belong to (deps.identify).
    callers: RecentCallers = field(default_factory=RecentCallers)

    def close(self) -> None:
        self.audit.close()
        self.engine.dispose()

    def orthanc_client(self) -> OrthancClient:
        settings = self.settings
        if settings.orthanc_username:
            auth = (settings.orthanc_username, settings.orthanc_password)
        else:
            auth = orthanc_credentials(settings.var_dir)
        return OrthancClient(settings.resolved_orthanc_url(), auth)

    def ingest(self, orthanc: OrthancClient) -> Ingest:
        return Ingest(
            self.sessions,
            orthanc,
            clock=self.clock,
            batch_size=self.settings.ingest_batch_size,
        )

    def routing_desk(self) -> RoutingDesk:
        return RoutingDesk(
            self.sessions,
            self.catalogue,
            self.roster,
            clock=self.clock,
            zone=ZoneInfo(self.settings.clinic_timezone),
            site=self.settings.site,
        )

    def reading_room(self) -> ReadingRoom:
        return ReadingRoom(
            self.catalogue,
            self.roster,
            clock=self.clock,
            site=self.settings.site,
            team=self.routing_desk().team,
            board=self.reading_board,
        )


def build_runtime(
    settings: Settings, *, clock: Clock = system_clock, migrate: bool = True
) -> Runtime:
    """Reference files are validated first, so a bad file stops start-up before anything runs."""
    catalogue = load_catalogue(settings.protocols_file)
    nodes = load_node_table(settings.nodes_file)
    radiologists = load_radiologists(settings.radiologists_file, nodes)
    engine = make_engine(settings.resolved_database_url())
    if migrate:
        upgrade(engine)
    sessions = make_session_factory(engine)
    if migrate:
        with sessions() as session, session.begin():
            sync_radiologists(session, radiologists, clock())
    desk = OrderDesk(
        catalogue=catalogue,
        nodes=nodes,
        clinic_timezone=ZoneInfo(settings.clinic_timezone),
        uid_root=settings.uid_root,
        accession_prefix=settings.accession_prefix,
        day_start=time.fromisoformat(settings.working_day_start),
        day_end=time.fromisoformat(settings.working_day_end),
        clock=clock,
    )
    audit = AuditTrail(sessions, clock)
    finder = WorklistFinder(sessions, audit, max_results=settings.mwl_max_results)
    mpps = MppsHandlers(
        sessions,
        clock,
        strict=settings.mpps_strict,
        offer_new_step=lambda session, step: offer_replacement_step(session, desk, step),
    )
    return Runtime(
        settings,
        engine,
        sessions,
        catalogue,
        nodes,
        desk,
        finder,
        mpps,
        radiologists,
        Roster(),
        audit,
        clock,
    )
