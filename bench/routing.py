"""Routing benchmark (issue 6): how long a routing decision takes, and how fast the reading
list answers with 10,000 studies and 50 radiologists asking at once.

1. Routing decisions, 50 radiologists, ``--open-studies`` (5,000) open studies between them.
   Target: a decision in under 5 ms.

   a. The policy alone: ``domain.routing.choose`` for ``--decisions`` (3,000) studies of
      every indication of ``worklist/protocols.yaml`` (STAT, HIGH, ROUTINE, LOW) against 50
      synthetic radiologists (neuro, MSK, general, both; sites MAIN, NORTH or both; contrast
      or not; day shifts, part-time, on call by day, on call by night) whose loads add up
      to the open studies.
   b. On a database: a fresh database with the same 50 radiologists (a temporary
      radiologists file, ``max_in_hand`` 200 so nobody refuses for load), the open studies
      as ``assigned``/``claimed`` assignments and as many reported before (assignment and
      final report: the history priors are looked up in); every study has its order, its
      performed worklist item (~2 KB of DICOM JSON) and its patient, 3 in 10 new studies
      a patient seen before. Then ``RoutingDesk.route_pass`` as the routing worker runs it:
      ``--single`` (20) passes with 1 new ready study, then ``--rounds`` (3) of
      ``--new-studies`` (200) new ready studies taken in passes of 50 (the desk's batch).
      Per decision = pass time / studies decided. References in the same process: a pass
      with nothing waiting and a ``SELECT 1`` round trip. Then both kinds again with every
      SQL statement timed (at the cursor) and the time inside ``choose`` counted.

2. The reading list, ``--studies`` (10,000) studies: 70 % reported (``final``), 8 in hand per
   radiologist (1 of them being read), the rest unassigned. The API (``create_app``) is
   served by uvicorn in a subprocess, as ``mri-pipeline up`` serves it (one process,
   ``log_level`` warning). Each client is one keep-alive connection written by hand (a full
   client library would spend the shared cores the server is measured on). First one
   client alone (no queueing: the service time), then ``--clients`` (50) clients, each
   sending ``--requests`` (20) ``GET /api/reading-list?radiologist=KEY`` (keys spread over
   the 50; each with the API token of that radiologist's user, so the API authenticates it
   and writes its audit line as in use) after one untimed request, in three ways: as fast
   as each is answered (a closed loop); all at once, 20 times with a pause (an event tells
   every open screen its list changed); and, with ``--think S`` (default 1), each waiting
   S seconds after an answer (a list refreshed every S s). ``GET /health`` (no login, no
   audit: the floor of the same server) is sent the first two ways too. Any answer but 200
   is a failure and is printed (a load stops after 50); each list is checked once against
   the API contract and the studies seeded. Last, ``reading_list`` in process, no HTTP,
   split into its parts, and what the API adds around it (the token's user, the audit
   line). Target: p95 under 50 ms, in each of the three ways.

The clock is fixed at Monday 2 March 2026 10:00 UTC (10:00 in London), inside the day shifts.
On PostgreSQL each database is a fresh schema, vacuumed and analysed after seeding, dropped
at the end. Targets are reported PASS/MISS; the exit status is 1 only when an operation
or a request failed.

    .venv/bin/python bench/routing.py                   # SQLite, the sizes above
    .venv/bin/python bench/routing.py --quick           # smoke run
    .venv/bin/python bench/routing.py --profile         # + cProfile of the passes and a list
    .venv/bin/python bench/routing.py --think 2         # the paced run: lists refreshed every 2 s
    .venv/bin/python bench/routing.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import logging
import math
import os
import pstats
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import yaml
from sqlalchemy import Engine, event, insert, text
from sqlalchemy.orm import Session, sessionmaker

import mri_pipeline.services.routing as routing_service
from common import (
    HOST,
    ROOT,
    BenchError,
    Figure,
    add_json_option,
    free_port,
    mark,
    percentile,
    pipeline_runtime,
    serving,
    tail,
    write_figures,
)
from mri_pipeline.config import Settings
from mri_pipeline.db.models import (
    Assignment,
    Patient,
    ReceivedStudy,
    Report,
    RequestedProcedure,
    ScheduledStep,
)
from mri_pipeline.domain.access import Role
from mri_pipeline.domain.protocols import Catalogue
from mri_pipeline.domain.radiologists import RadiologistTable
from mri_pipeline.domain.reading import AssignmentState
from mri_pipeline.domain.routing import (
    InHand,
    Radiologist,
    StudyToRoute,
    choose,
    escalation_due,
    qualified,
)
from mri_pipeline.runtime import Runtime, build_runtime
from mri_pipeline.services.accounts import add_user, by_token
from mri_pipeline.services.reference import load_catalogue

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday; 10:00 in London (GMT)
ZONE = ZoneInfo("Europe/London")
SITE = "MAIN"  # Settings.site: every study routed here is a MAIN study
RADIOLOGISTS = 50
IN_HAND_EACH = 8  # the reading-list database: studies in each radiologist's hands
REPORTED_SHARE = 0.7
PRIOR_SHARE = 0.3  # new studies of a patient with an earlier study
UID_ROOT = "1.2.826.0.1.3680043.8.498.66"
CHUNK = 2000
DECISION_TARGET_MS = 5.0
LIST_TARGET_MS = 50.0
SERVER_START_TIMEOUT = 60.0
MAX_FAILURES = 50  # a load stops once this many requests have failed
SEEDED_TABLES = (
    "patients",
    "requested_procedures",
    "scheduled_steps",
    "received_studies",
    "assignments",
    "reports",
)
WORKLIST_ITEM_JSON = json.dumps({"00100010": {"vr": "PN", "Value": ["x" * 2000]}})
# How often each indication is ordered: STAT 3 %, HIGH 15 %, ROUTINE 62 %, LOW 20 %.
INDICATION_WEIGHTS = {
    "suspected-ces": 1.0,
    "motor-deficit": 1.0,
    "infection-with-deficit": 0.5,
    "cancer-with-deficit": 0.5,
    "infection": 3.0,
    "cancer-red-flags": 5.0,
    "fracture-risk": 5.0,
    "postop-new-deficit": 2.0,
    "postop": 5.0,
    "radiculopathy": 30.0,
    "stenosis": 20.0,
    "inflammatory-back-pain": 7.0,
    "screening": 20.0,
}


def fixed_clock() -> datetime:
    return NOW


# ---------------------------------------------------------------- figures


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def timed(run: Callable[[], Any], repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return seconds


def row(label: str, count: int | str, seconds: Sequence[float], width: int = 46) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"  {label:<{width}}{count:>7}{median(ms):>10.3f}{percentile(ms, 0.95):>10.3f}"
        f"{max(ms, default=math.nan):>10.3f}"
    )


def header(first: str, count: str = "n", width: int = 46) -> str:
    return f"  {first:<{width}}{count:>7}{'median':>10}{'p95':>10}{'max':>10}"


class SqlLog:
    """Every statement an engine runs while entered: calls and seconds, by statement
    (entered again, it adds up)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.calls: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)

    def __enter__(self) -> SqlLog:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, *_args: Any) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        spent = time.perf_counter() - conn.info["bench_started"].pop()
        key = statement_label(statement)
        self.calls[key] += 1
        self.seconds[key] += spent

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def lines(self, per: int, per_name: str) -> list[str]:
        """The statements, most time first: calls, ms in all and per ``per_name``."""
        out = [f"    {'statement':<84}{'calls':>6}{'ms':>9}{f'ms/{per_name}':>12}"]
        for key in sorted(self.seconds, key=self.seconds.__getitem__, reverse=True):
            out.append(
                f"    {key:<84}{self.calls[key]:>6}{self.seconds[key] * 1000:>9.1f}"
                f"{self.seconds[key] * 1000 / max(per, 1):>12.3f}"
            )
        return out


def statement_label(statement: str) -> str:
    """A statement on one line, its column list and parameters left out."""
    flat = " ".join(statement.split())
    flat = re.sub(r"^SELECT .*? FROM ", "SELECT … FROM ", flat)
    flat = re.sub(r"^(INSERT INTO \w+) .*", r"\1", flat)
    flat = re.sub(r"^(UPDATE \w+) SET .*? WHERE", r"\1 SET … WHERE", flat)
    flat = re.sub(r"\b(\w+)\.(\w+)", r"\2", flat)  # table.column -> column
    flat = re.sub(r"\(__\[POSTCOMPILE_\w+\]\)|%\(\w+\)s|\?", "?", flat)
    return flat if len(flat) <= 82 else flat[:81] + "…"


def profile_report(profiler: cProfile.Profile, lines: int = 22) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


# ---------------------------------------------------------------- radiologists and studies


def radiologist_entries(count: int) -> list[dict[str, Any]]:
    """``count`` radiologists as ``worklist/radiologists.yaml`` writes them: by index, four
    subspecialty mixes, three site sets, three in four report contrast, five shift
    patterns (day, day, day on call, part-time Mon/Wed/Fri, on call by night)."""
    weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri"]
    shifts = [
        [{"days": weekdays, "start": "08:00", "end": "18:00"}],
        [{"days": weekdays, "start": "08:00", "end": "18:00"}],
        [
            {"days": weekdays, "start": "08:00", "end": "18:00", "on_call": True},
            {"days": ["Sat"], "start": "08:00", "end": "20:00", "on_call": True},
        ],
        [{"days": ["Mon", "Wed", "Fri"], "start": "09:00", "end": "17:00"}],
        [
            {"days": weekdays, "start": "18:00", "end": "24:00", "on_call": True},
            {"days": weekdays, "start": "00:00", "end": "08:00", "on_call": True},
            {"days": ["Sat", "Sun"], "start": "00:00", "end": "24:00", "on_call": True},
        ],
    ]
    subspecialties = [["neuro"], ["MSK"], ["general"], ["neuro", "MSK"]]
    entries = []
    for index in range(count):
        sites = ["NORTH"] if index % 7 == 0 else ["MAIN", "NORTH"] if index % 3 == 0 else [SITE]
        entries.append(
            {
                "key": f"rad.b{index + 1:02d}",
                "name": f"Reader^R{index + 1:02d}",
                "subspecialties": subspecialties[index % 4],
                "sites": sites,
                "reports_contrast": index % 3 != 2,
                "max_in_hand": 200,
                "shifts": shifts[index % 5],
            }
        )
    return entries


def write_radiologists(entries: list[dict[str, Any]], path: Path) -> Path:
    path.write_text(yaml.safe_dump({"radiologists": entries}, sort_keys=False), encoding="utf-8")
    return path


def team_of(entries: list[dict[str, Any]]) -> list[Radiologist]:
    table = RadiologistTable.model_validate({"radiologists": entries})
    return table.on(NOW.astimezone(ZONE).date(), ZONE)


def draw_indication(rng: random.Random) -> str:
    return rng.choices(list(INDICATION_WEIGHTS), weights=list(INDICATION_WEIGHTS.values()))[0]


def route_of(
    catalogue: Catalogue,
    indication: str,
    uid: str,
    completed_at: datetime,
    prior_reporter: str | None = None,
) -> StudyToRoute:
    """What routing knows of a study ordered for ``indication`` (as ``route_facts`` has it)."""
    ordered = catalogue.indication(indication)
    protocol = catalogue.protocol(ordered.protocol)
    return StudyToRoute(
        study_instance_uid=uid,
        priority=ordered.priority,
        protocol_code=protocol.code,
        protocol_meaning=protocol.meaning,
        subspecialties=protocol.subspecialty,
        contrast=protocol.contrast,
        site=SITE,
        completed_at=completed_at,
        prior_reporter=prior_reporter,
    )


def holder_for(rng: random.Random, team: Sequence[Radiologist], route: StudyToRoute) -> str | None:
    """A radiologist who may report ``route`` (shifts aside), at random; None if nobody."""
    able = [r.key for r in team if qualified(r, route) is None]
    return rng.choice(able) if able else None


@dataclass(frozen=True)
class Seeded:
    """A study written to the database, and what routing knows of it."""

    study_pk: int
    route: StudyToRoute


class Seeder:
    """Bulk inserts of patients, orders and received studies (ready, QC passed) and their
    assignments, as ingest, QC and routing would have left them."""

    def __init__(self, sessions: sessionmaker[Session], catalogue: Catalogue, seed: int) -> None:
        self.sessions = sessions
        self.catalogue = catalogue
        self.rng = random.Random(seed)
        self.patients: list[int] = []
        self.serial = 0

    def add_patients(self, count: int) -> None:
        first = len(self.patients)
        rows = [
            {
                "patient_id": f"BP{first + n:07d}",
                "name": f"Bench^Patient{first + n:07d}",
                "birth_date": date(1940, 1, 1) + timedelta(days=(first + n) * 37 % 25_000),
                "sex": "MF"[(first + n) % 2],
            }
            for n in range(count)
        ]
        with self.sessions.begin() as session:
            for start in range(0, len(rows), CHUNK):
                self.patients += session.scalars(
                    insert(Patient).returning(Patient.id, sort_by_parameter_order=True),
                    rows[start : start + CHUNK],
                ).all()

    def add_studies(
        self,
        count: int,
        completed: Callable[[random.Random], datetime],
        patients: Sequence[int],
        indications: Sequence[str] = (),
    ) -> list[Seeded]:
        """``count`` ready, QC-passed studies, each of a patient drawn from ``patients``
        (database keys), for ``indications`` in turn or, without, random ones."""
        procedures: list[dict[str, Any]] = []
        studies: list[dict[str, Any]] = []
        routes: list[StudyToRoute] = []
        for n in range(count):
            self.serial += 1
            serial = self.serial
            indication = indications[n] if indications else draw_indication(self.rng)
            completed_at = completed(self.rng)
            uid = f"{UID_ROOT}.{serial}"
            route = route_of(self.catalogue, indication, uid, completed_at)
            accession = f"BR{serial:08d}"
            procedures.append(
                {
                    "accession_number": accession,
                    "requested_procedure_id": f"RP{serial:08d}",
                    "study_instance_uid": uid,
                    "patient_pk": self.rng.choice(patients),
                    "referring_physician": "Referrer^Bench",
                    "indication": indication,
                    "red_flags": [],
                    "protocol_code": route.protocol_code,
                    "priority": route.priority.value,
                    "source": "order",
                    "created_at": completed_at - timedelta(days=3),
                }
            )
            studies.append(
                {
                    "study_instance_uid": uid,
                    "orthanc_id": f"o-{serial:08d}",
                    "accession_number": accession,
                    "patient_id": None,
                    "patient_name": None,
                    "reconciliation": "matched",
                    "state": "ready_for_reading",
                    "completion_basis": "mpps",
                    "stable": True,
                    "instance_count": 120,
                    "first_received_at": completed_at - timedelta(minutes=25),
                    "last_received_at": completed_at,
                    "completed_at": completed_at,
                    "qc_verdict": "PASSED",
                }
            )
            routes.append(route)
        seeded: list[Seeded] = []
        with self.sessions.begin() as session:
            for start in range(0, count, CHUNK):
                part = slice(start, start + CHUNK)
                procedure_pks = session.scalars(
                    insert(RequestedProcedure).returning(
                        RequestedProcedure.id, sort_by_parameter_order=True
                    ),
                    procedures[part],
                ).all()
                for study, pk in zip(studies[part], procedure_pks, strict=True):
                    study["procedure_pk"] = pk
                session.execute(
                    insert(ScheduledStep),
                    [
                        scheduled_step(p, pk)
                        for p, pk in zip(procedures[part], procedure_pks, strict=True)
                    ],
                )
                study_pks = session.scalars(
                    insert(ReceivedStudy).returning(ReceivedStudy.id, sort_by_parameter_order=True),
                    studies[part],
                ).all()
                seeded += [
                    Seeded(pk, route) for pk, route in zip(study_pks, routes[part], strict=True)
                ]
        return seeded

    def add_assignments(self, rows: list[dict[str, Any]]) -> None:
        self._insert(Assignment, rows)

    def _insert(self, model: type[Assignment] | type[Report], rows: list[dict[str, Any]]) -> None:
        with self.sessions.begin() as session:
            for start in range(0, len(rows), CHUNK):
                session.execute(insert(model), rows[start : start + CHUNK])
            if model is Assignment:
                # As routing leaves them: a routed study carries when it was routed.
                session.execute(
                    text(
                        "UPDATE received_studies SET routed_at = (SELECT assigned_at FROM "
                        "assignments WHERE assignments.study_pk = received_studies.id) "
                        "WHERE routed_at IS NULL AND EXISTS (SELECT 1 FROM assignments "
                        "WHERE assignments.study_pk = received_studies.id)"
                    )
                )

    def add_reported(self, count: int, team: Sequence[Radiologist]) -> None:
        """``count`` studies of the last six months, reported final (assignment and report):
        the history a new study's prior is looked up in."""
        assignments, reports = [], []
        for study in self.add_studies(
            count, lambda rng: NOW - timedelta(days=rng.uniform(2, 180)), self.patients
        ):
            key = holder_for(self.rng, team, study.route) or team[1].key
            completed = study.route.completed_at
            final_at = completed + timedelta(hours=self.rng.uniform(0.5, 40))
            assignments.append(
                assignment_row(
                    study,
                    key,
                    AssignmentState.FINAL,
                    completed + timedelta(minutes=3),
                    closed_at=final_at,
                )
            )
            reports.append(
                {
                    "study_pk": study.study_pk,
                    "radiologist_key": key,
                    "status": "final",
                    "impression": "No compressive lesion. Mild L4-L5 disc bulge.",
                    "preliminary_at": None,
                    "final_at": final_at,
                    "updated_at": final_at,
                }
            )
        self._insert(Assignment, assignments)
        self._insert(Report, reports)


def scheduled_step(procedure: dict[str, Any], procedure_pk: int) -> dict[str, Any]:
    """The order's worklist item, performed: its DICOM JSON about as long as the order
    desk writes it (~2 KB)."""
    start = procedure["created_at"].replace(tzinfo=None) + timedelta(days=3, minutes=-40)
    return {
        "sps_id": f"S{procedure['requested_procedure_id'][2:]}",
        "procedure_pk": procedure_pk,
        "status": "COMPLETED",
        "station_ae_title": "MRI1",
        "station_multi": False,
        "station_name": "MRI1",
        "modality": "MR",
        "start_at": start,
        "end_at": start + timedelta(minutes=30),
        "patient_id": None,
        "patient_name_key": "",
        "accession_number": procedure["accession_number"],
        "requested_procedure_id": procedure["requested_procedure_id"],
        "study_instance_uid": procedure["study_instance_uid"],
        "revision": 2,
        "dataset_json": WORKLIST_ITEM_JSON,
        "safety_checklist": None,
        "updated_at": procedure["created_at"] + timedelta(days=3),
    }


def assignment_row(
    study: Seeded,
    radiologist: str | None,
    state: AssignmentState,
    assigned_at: datetime,
    *,
    closed_at: datetime | None = None,
) -> dict[str, Any]:
    route = study.route
    return {
        "study_pk": study.study_pk,
        "radiologist_key": radiologist,
        "state": state.value,
        "reason": "seeded by bench/routing.py" if radiologist else "nobody eligible (seeded)",
        "priority": route.priority.value,
        "priority_rank": route.priority.rank,
        "units": route.units,
        "deadline": route.deadline,
        "escalate_at": escalation_due(route),
        "assigned_at": assigned_at,
        "first_assigned_at": assigned_at if radiologist else None,
        "claimed_at": assigned_at + timedelta(minutes=5)
        if state is AssignmentState.CLAIMED
        else None,
        "closed_at": closed_at,
    }


def analyze(runtime: Runtime) -> None:
    """PostgreSQL: vacuumed and analysed, as autovacuum leaves a database that has run a
    while (and so autovacuum does not start in the middle of the measurements)."""
    if runtime.engine.dialect.name == "postgresql":
        with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"VACUUM ANALYZE {', '.join(SEEDED_TABLES)}"))


# ---------------------------------------------------------------- 1a: the policy alone


@dataclass
class PolicyResult:
    seconds: list[float]
    nobody: int
    eligible: float


def bench_policy(
    args: argparse.Namespace, catalogue: Catalogue, team: list[Radiologist]
) -> PolicyResult:
    rng = random.Random(args.seed)
    loads: dict[str, InHand] = {}
    for n in range(args.open_studies):
        route = route_of(catalogue, draw_indication(rng), f"open.{n}", NOW)
        key = holder_for(rng, team, route)
        if key is not None:
            held = loads.get(key, InHand())
            loads[key] = InHand(held.studies + 1, held.units + route.units)
    keys = [r.key for r in team]
    studies = [
        route_of(
            catalogue,
            draw_indication(rng),
            f"new.{n}",
            NOW - timedelta(minutes=rng.uniform(0, 360)),
            rng.choice(keys) if rng.random() < PRIOR_SHARE else None,
        )
        for n in range(args.decisions)
    ]
    for study in studies[:200]:  # warm-up
        choose(study, team, loads, NOW)
    seconds, nobody, eligible = [], 0, 0
    for study in studies:
        started = time.perf_counter()
        decision = choose(study, team, loads, NOW)
        seconds.append(time.perf_counter() - started)
        nobody += decision.radiologist is None
        eligible += len(decision.considered)
    shifts = [r.shift_at(NOW) for r in team]
    print(
        f"\n1. routing decisions: {len(team)} radiologists ({sum(s is not None for s in shifts)} "
        f"on shift at {NOW.astimezone(ZONE):%a %H:%M} in London, "
        f"{sum(s is not None and s.on_call for s in shifts)} of them on call), "
        f"{sum(h.studies for h in loads.values()):,} open studies"
    )
    return PolicyResult(seconds, nobody, eligible / len(studies))


# ---------------------------------------------------------------- 1b: on a database


@dataclass
class RoutingResult:
    single: list[float] = field(default_factory=list)  # seconds of passes with 1 study
    per_decision: list[float] = field(default_factory=list)  # pass seconds / decided
    pass_seconds: list[float] = field(default_factory=list)
    decided: int = 0
    alerts: int = 0
    passes_with_nothing: list[float] = field(default_factory=list)
    select_one: list[float] = field(default_factory=list)
    cold: float = math.nan
    rounds: int = 0
    open_after: int = 0


def seed_routing(
    runtime: Runtime, seeder: Seeder, team: list[Radiologist], open_studies: int
) -> None:
    """``open_studies`` in hand (1 in 5 being read) and as many reported before."""
    seeder.add_patients(int(open_studies * 1.4))
    seeder.add_reported(open_studies, team)
    studies = seeder.add_studies(
        open_studies,
        lambda rng: NOW - timedelta(minutes=rng.uniform(30, 5 * 24 * 60)),
        seeder.patients,
    )
    rows = []
    for study in studies:
        key = holder_for(seeder.rng, team, study.route)
        if key is None:
            continue
        state = AssignmentState.CLAIMED if seeder.rng.random() < 0.2 else AssignmentState.ASSIGNED
        rows.append(
            assignment_row(study, key, state, study.route.completed_at + timedelta(minutes=2))
        )
    seeder.add_assignments(rows)
    analyze(runtime)


def new_ready(seeder: Seeder, count: int) -> None:
    """``count`` studies just made ready: some of a patient seen before (a prior)."""
    known = list(seeder.patients)
    seeder.add_patients(count)
    fresh = seeder.patients[len(known) :]
    patients = [
        seeder.rng.choice(known) if seeder.rng.random() < PRIOR_SHARE else seeder.rng.choice(fresh)
        for _ in range(count)
    ]
    seeder.add_studies(count, lambda rng: NOW - timedelta(minutes=rng.uniform(1, 120)), patients)


def route_all(runtime: Runtime, expected: int, result: RoutingResult | None) -> tuple[int, int]:
    """Passes until ``expected`` studies are decided, each timed into ``result``, then (with
    ``result``) one more that finds nothing waiting. Returns the studies decided and how
    many went to the unassigned list (nobody eligible)."""
    desk = runtime.routing_desk()
    decided = alerts = 0
    while decided < expected:
        started = time.perf_counter()
        written = desk.route_pass()
        spent = time.perf_counter() - started
        if not written:
            raise BenchError(f"{expected} new studies, a pass wrote nothing after {decided}")
        decided += len(written)
        alerts += sum(row.radiologist_key is None for row in written)
        if result is not None:
            result.pass_seconds.append(spent)
            result.per_decision.append(spent / len(written))
    if result is not None:
        started = time.perf_counter()
        if desk.route_pass():
            raise BenchError("a pass found work after every new study was decided")
        result.passes_with_nothing.append(time.perf_counter() - started)
    return decided, alerts


def bench_routing_db(
    args: argparse.Namespace, catalogue: Catalogue, entries: list[dict[str, Any]], tmp: Path
) -> RoutingResult:
    team = team_of(entries)
    radiologists_file = write_radiologists(entries, tmp / "radiologists.yaml")
    result = RoutingResult()
    with pipeline_runtime(
        args.database_url, tmp / "routing", radiologists_file=radiologists_file
    ) as runtime:
        runtime.clock = fixed_clock
        seeder = Seeder(runtime.sessions, catalogue, args.seed)
        started = time.perf_counter()
        seed_routing(runtime, seeder, team, args.open_studies)
        print(
            f"  database: {runtime.engine.dialect.name}, seeded {args.open_studies:,} open "
            f"studies in {time.perf_counter() - started:.1f} s"
        )
        desk = runtime.routing_desk()
        new_ready(seeder, 1)
        started = time.perf_counter()
        desk.route_pass()  # the roster read and every statement compiled once
        result.cold = time.perf_counter() - started
        for _ in range(args.single):
            new_ready(seeder, 1)
            started = time.perf_counter()
            written = desk.route_pass()
            result.single.append(time.perf_counter() - started)
            if len(written) != 1:
                raise BenchError(f"a pass with 1 new study wrote {len(written)} rows")
        for _ in range(args.rounds):
            new_ready(seeder, args.new_studies)
            decided, alerts = route_all(runtime, args.new_studies, result)
            result.decided += decided
            result.alerts += alerts
        result.rounds = args.rounds
        with runtime.sessions() as session:
            result.select_one = timed(lambda: session.execute(text("SELECT 1")).one(), 50)
            result.open_after = sum(h.studies for h in routing_service.in_hand(session).values())
        print_routing_db(result, args)
        breakdown_routing(runtime, seeder, args)
    return result


@dataclass
class Instrumented:
    """Passes run with every statement timed and the time inside ``choose`` counted."""

    decided: int
    seconds: float
    sql: SqlLog
    in_choose: float

    def per_decision(self, seconds: float) -> float:
        return seconds * 1000 / max(self.decided, 1)


def instrumented(
    runtime: Runtime,
    seeder: Seeder,
    count: int,
    rounds: int,
    profiler: cProfile.Profile | None,
) -> Instrumented:
    """``rounds`` times: ``count`` new ready studies, passes until they are decided."""
    in_choose: list[float] = []
    original = routing_service.choose

    def timed_choose(*a: Any, **k: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            in_choose.append(time.perf_counter() - started)

    decided, seconds = 0, 0.0
    sql = SqlLog(runtime.engine)
    routing_service.choose = timed_choose  # type: ignore[assignment]
    try:
        for _ in range(rounds):
            new_ready(seeder, count)
            with sql:
                started = time.perf_counter()
                if profiler:
                    profiler.enable()
                decided += route_all(runtime, count, None)[0]
                if profiler:
                    profiler.disable()
                seconds += time.perf_counter() - started
    finally:
        routing_service.choose = original  # type: ignore[assignment]
    return Instrumented(decided, seconds, sql, sum(in_choose))


def breakdown_routing(runtime: Runtime, seeder: Seeder, args: argparse.Namespace) -> None:
    """Where a decision's time goes: passes with 1 study, and a round of ``--new-studies``."""
    single = instrumented(runtime, seeder, 1, args.single, None)
    batch = instrumented(runtime, seeder, args.new_studies, 1, None)
    titles = (f"1 study a pass, x{single.decided}", f"{batch.decided} in passes of 50")
    print(
        "\n  where a decision's time goes (mean ms per decision; SQL timed at the cursor, "
        "so 'the rest' is the ORM, fetching rows and Python):"
    )
    print(f"    {'':<84}{titles[0]:>24}{titles[1]:>24}")
    parts = [
        ("whole pass", lambda r: r.seconds),
        ("SQL statements", lambda r: r.sql.total),
        ("choose() (the policy)", lambda r: r.in_choose),
        ("the rest", lambda r: r.seconds - r.sql.total - r.in_choose),
    ]
    for label, part in parts:
        print(
            f"    {label:<84}{single.per_decision(part(single)):>24.3f}"
            f"{batch.per_decision(part(batch)):>24.3f}"
        )
    print(f"    {'statement (calls per decision, ms per decision)':<84}")
    keys = sorted(
        set(single.sql.seconds) | set(batch.sql.seconds),
        key=lambda k: -(single.sql.seconds.get(k, 0) + batch.sql.seconds.get(k, 0)),
    )
    for key in keys:
        cells = [
            f"{r.sql.calls.get(key, 0) / max(r.decided, 1):>12.2f}"
            f"{r.per_decision(r.sql.seconds.get(key, 0)):>12.3f}"
            for r in (single, batch)
        ]
        print(f"    {key:<84}{''.join(cells)}")
    if args.profile:
        for count, rounds in ((1, args.single), (args.new_studies, 1)):
            profiler = cProfile.Profile()
            instrumented(runtime, seeder, count, rounds, profiler)
            print(
                f"\n  cProfile, {rounds} round(s) of {count} new study(ies), passes until decided:"
            )
            print(profile_report(profiler))


def print_routing_db(result: RoutingResult, args: argparse.Namespace) -> None:
    print(header("ms", "n"))
    print(row("cold first pass (roster read, statements compiled)", 1, [result.cold]))
    print(row("pass with 1 new study (= per decision)", len(result.single), result.single))
    label = f"{args.new_studies} new studies: per decision"
    print(row(f"{label} (pass / decided)", len(result.per_decision), result.per_decision))
    print(
        row(
            f"{args.new_studies} new studies: pass of up to 50",
            len(result.pass_seconds),
            result.pass_seconds,
        )
    )
    print(
        row(
            "reference: pass with nothing waiting",
            len(result.passes_with_nothing),
            result.passes_with_nothing,
        )
    )
    print(row("reference: SELECT 1 round trip", len(result.select_one), result.select_one))
    print(
        f"  {result.decided} decided in {result.rounds} rounds of {args.new_studies}, "
        f"{result.alerts} to the unassigned list (nobody eligible); "
        f"{result.open_after:,} studies in hand at the end"
    )


# ---------------------------------------------------------------- 2: the reading list


def seed_reading(
    runtime: Runtime, seeder: Seeder, team: list[Radiologist], studies: int
) -> dict[str, int]:
    seeder.add_patients(int(studies * 0.7))
    reported = int(studies * REPORTED_SHARE)
    in_hand = IN_HAND_EACH * len(team)
    unassigned = max(0, studies - reported - in_hand)
    counts = {"final": reported, "in hand": 0, "unassigned": unassigned}
    seeder.add_reported(reported, team)
    rows: list[dict[str, Any]] = []
    # Each radiologist's own list: studies they may report (at their own site, for the
    # NORTH-only ones), one of them being read.
    wanted: list[tuple[Radiologist, str]] = []
    for radiologist in team:
        site = sorted(radiologist.sites)[0]
        while sum(r is radiologist for r, _ in wanted) < IN_HAND_EACH:
            indication = draw_indication(seeder.rng)
            probe = route_of(seeder.catalogue, indication, "probe", NOW, None)
            if qualified(radiologist, replace(probe, site=site)) is None:
                wanted.append((radiologist, indication))
    own = seeder.add_studies(
        len(wanted),
        lambda rng: NOW - timedelta(minutes=rng.uniform(20, 3 * 24 * 60)),
        seeder.patients,
        [indication for _, indication in wanted],
    )
    for n, ((radiologist, _), study) in enumerate(zip(wanted, own, strict=True)):
        state = AssignmentState.CLAIMED if n % IN_HAND_EACH == 0 else AssignmentState.ASSIGNED
        at = study.route.completed_at + timedelta(minutes=2)
        rows.append(assignment_row(study, radiologist.key, state, at))
    counts["in hand"] = len(own)
    # The rest wait in the unassigned list (nobody eligible when they came, or given back).
    pool = seeder.add_studies(
        unassigned,
        lambda rng: NOW - timedelta(minutes=rng.uniform(20, 3 * 24 * 60)),
        seeder.patients,
    )
    rows += [
        assignment_row(s, None, AssignmentState.UNASSIGNED, s.route.completed_at) for s in pool
    ]
    seeder.add_assignments(rows)
    analyze(runtime)
    return counts


@dataclass(frozen=True)
class Request:
    """One GET as a client sends it: the path and, for the reading list, the radiologist's
    API token."""

    path: str
    token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


@dataclass
class Load:
    clients: int
    latencies: list[float]
    seconds: float
    failures: list[str]

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        """Requests a second."""
        return ratio(self.requests, self.seconds)

    def ms(self, share: float) -> float:
        return percentile(self.latencies, share) * 1000


class KeepAlive:
    """One client's HTTP/1.1 connection, kept open: a GET written by hand and its answer
    read by its Content-Length. It costs the shared cores a small part of what a full
    client library does, so the figures are the server's."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, base_url: str) -> KeepAlive:
        url = httpx.URL(base_url)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        return cls(reader, writer)

    async def get(self, target: Request) -> tuple[int, bytes]:
        lines = [f"GET {target.path} HTTP/1.1", f"Host: {HOST}"]
        lines += [f"{name}: {value}" for name, value in target.headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (f.partition(":") for f in fields if f)
        )
        if "content-length" not in headers:
            raise BenchError(f"GET {target.path}: no Content-Length ({status_line})")
        body = await self.reader.readexactly(int(headers["content-length"]))
        return int(status_line.split(" ", 2)[1]), body

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


# How the clients send: "closed" (each as fast as it is answered), "burst" (all at once,
# as every open screen does when an event tells it its list changed, then a pause),
# or a number (each waits that many seconds after an answer: a list refreshed so often).
Shape = str | float
BURST_PAUSE = 0.3  # seconds between bursts
IN_BURSTS = ", all at once"


async def _load(
    base_url: str, targets: Sequence[Request], clients: int, requests: int, shape: Shape
) -> Load:
    """``clients`` at once, each on its own connection: one untimed request, then, when
    all are connected, ``requests`` timed ones each, targets taken in turn from its own
    first, sent as ``shape`` says."""
    latencies: list[float] = []
    failures: list[str] = []
    connected = asyncio.Barrier(clients + 1)
    # In bursts each round has two meeting points: all send, then all have their answer.
    rounds = [
        (asyncio.Barrier(clients + 1), asyncio.Barrier(clients + 1))
        for _ in range(requests if shape == "burst" else 0)
    ]
    stagger = random.Random(clients)

    async def timed(http: KeepAlive, target: Request) -> None:
        started = time.perf_counter()
        try:
            status, body = await http.get(target)
        except (OSError, asyncio.IncompleteReadError, BenchError) as exc:
            latencies.append(time.perf_counter() - started)
            failures.append(f"GET {target.path}: {type(exc).__name__}: {exc}")
            return
        latencies.append(time.perf_counter() - started)
        if status != 200:
            failures.append(f"GET {target.path}: {status} {body[:200]!r}")

    async def client(number: int) -> None:
        http = await KeepAlive.open(base_url)
        try:
            await http.get(targets[number % len(targets)])
            await connected.wait()
            if isinstance(shape, float):
                await asyncio.sleep(stagger.uniform(0, shape))
            for k in range(requests):
                if rounds:
                    await rounds[k][0].wait()
                elif isinstance(shape, float) and k:
                    await asyncio.sleep(shape)
                if len(failures) < MAX_FAILURES:  # beyond, latencies say nothing more
                    await timed(http, targets[(number + k) % len(targets)])
                if rounds:
                    await rounds[k][1].wait()
        finally:
            await http.close()

    tasks = [asyncio.create_task(client(n)) for n in range(clients)]
    await connected.wait()
    started = time.perf_counter()
    for send, answered in rounds:
        await send.wait()
        await answered.wait()
        await asyncio.sleep(BURST_PAUSE)
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    seconds = time.perf_counter() - started - BURST_PAUSE * len(rounds)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not failures:
            failures.append(f"a client stopped: {type(outcome).__name__}: {outcome}")
    return Load(clients, latencies, seconds, failures)


def load(
    base_url: str,
    targets: Sequence[Request],
    clients: int,
    requests: int,
    shape: Shape = "closed",
) -> Load:
    return asyncio.run(_load(base_url, targets, clients, requests, shape))


@contextmanager
def api_server(settings: Settings, log_path: Path) -> Iterator[str]:
    """The API served by uvicorn in a subprocess on a free port, until the block ends."""
    port = free_port()
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        settings.model_dump_json(),
        "--port",
        str(port),
    ]
    base_url = f"http://{HOST}:{port}"
    with serving(command, base_url, log_path, timeout=SERVER_START_TIMEOUT):
        yield base_url


def serve(settings_json: str, port: int) -> int:
    """The subprocess: the API on ``port`` with the bench's clock, as ``mri-pipeline up``."""
    import uvicorn

    from mri_pipeline.api.app import create_app

    runtime = build_runtime(Settings(**json.loads(settings_json)), clock=fixed_clock, migrate=False)
    try:
        uvicorn.run(create_app(runtime), host=HOST, port=port, log_level="warning")
    finally:
        runtime.close()
    return 0


def check_contract(
    base_url: str, lists: Sequence[Request], admin: str, expected_in_hand: dict[str, int]
) -> list[str]:
    """Each list answers as the API documents it, with the studies seeded; without a
    token it is 401, and an unknown radiologist (asked by an administrator) 404."""
    problems = []
    fields = {"radiologist", "name", "now", "in_hand", "limit", "studies", "next_unassigned"}
    with httpx.Client(base_url=base_url, timeout=60) as http:
        for target in lists:
            answer = http.get(target.path, headers=target.headers)
            if answer.status_code != 200:
                problems.append(f"{target.path}: {answer.status_code} {answer.text[:200]}")
                continue
            body = answer.json()
            key = body.get("radiologist")
            if set(body) != fields:
                problems.append(f"{target.path}: fields {sorted(body)}")
            elif (
                body["in_hand"] != expected_in_hand.get(key, 0)
                or len(body["studies"]) != body["in_hand"]
            ):
                problems.append(
                    f"{key}: {body['in_hand']} in hand, seeded {expected_in_hand.get(key, 0)}"
                )
        for target, expected in (
            (Request(lists[0].path), 401),
            (Request("/api/reading-list?radiologist=rad.nobody", admin), 404),
        ):
            got = http.get(target.path, headers=target.headers).status_code
            if got != expected:
                who = "an administrator" if target.token else "no token"
                problems.append(f"{target.path} ({who}): {got}, expected {expected}")
    return problems


def issue_tokens(runtime: Runtime, keys: Sequence[str]) -> tuple[dict[str, str], str]:
    """A user and API token for each radiologist (their login is linked to them), and an
    administrator's token."""
    with runtime.sessions.begin() as session:
        tokens = {
            key: add_user(session, key, Role.RADIOLOGIST, NOW, radiologist_key=key)[1]
            for key in keys
        }
        admin = add_user(session, "bench.admin", Role.ADMIN, NOW)[1]
    return tokens, admin


@dataclass
class ReadingResult:
    counts: dict[str, int]
    alone: dict[str, Load]
    concurrent: dict[str, Load]
    contract: list[str]
    in_process: dict[str, list[float]]
    pool_rows: int


def bench_reading(
    args: argparse.Namespace, catalogue: Catalogue, entries: list[dict[str, Any]], tmp: Path
) -> ReadingResult:
    team = team_of(entries)
    radiologists_file = write_radiologists(entries, tmp / "radiologists.yaml")
    keys = [r.key for r in team]
    with pipeline_runtime(
        args.database_url, tmp / "reading", radiologists_file=radiologists_file
    ) as runtime:
        runtime.clock = fixed_clock
        seeder = Seeder(runtime.sessions, catalogue, args.seed + 1)
        started = time.perf_counter()
        counts = seed_reading(runtime, seeder, team, args.studies)
        print(
            f"\n2. reading list: {sum(counts.values()):,} studies ({counts['final']:,} final, "
            f"{counts['in hand']} in hand, {counts['unassigned']:,} unassigned), "
            f"{len(team)} radiologists; seeded in {time.perf_counter() - started:.1f} s"
        )
        with runtime.sessions() as session:
            in_hand = {k: v.studies for k, v in routing_service.in_hand(session).items()}
        tokens, admin = issue_tokens(runtime, keys)
        targets = {
            "health": [Request("/health")],
            "reading-list": [
                Request(f"/api/reading-list?radiologist={key}", tokens[key]) for key in keys
            ],
        }
        with api_server(runtime.settings, tmp / "api.log") as base_url:
            contract = check_contract(base_url, targets["reading-list"], admin, in_hand)
            alone = {
                name: load(base_url, endpoint, 1, args.alone) for name, endpoint in targets.items()
            }
            concurrent = {
                name: load(base_url, endpoint, args.clients, args.requests)
                for name, endpoint in targets.items()
            }
            for name, endpoint in targets.items():
                concurrent[f"{name}{IN_BURSTS}"] = load(
                    base_url, endpoint, args.clients, args.requests, "burst"
                )
            if args.think:
                paced = load(
                    base_url, targets["reading-list"], args.clients, args.requests, args.think
                )
                concurrent[f"reading-list, every {args.think:g} s"] = paced
            server_log = tail(tmp / "api.log", 5)
        if server_log.strip():
            print(f"  server log (last lines):\n{server_log}")
        result = ReadingResult(counts, alone, concurrent, contract, {}, 0)
        print_reading(result, args)
        result.in_process, result.pool_rows = breakdown_reading(runtime, keys, tokens, args)
    return result


def breakdown_reading(
    runtime: Runtime, keys: Sequence[str], tokens: dict[str, str], args: argparse.Namespace
) -> tuple[dict[str, list[float]], int]:
    """``ReadingRoom.reading_list`` in process, a new session per call as per request, and
    its parts: the board's check against the database (nothing changed), the team; beside
    it the board read in full, the claim's own look at the unassigned list in SQL, and
    what the API adds around a list: the token's user (once in 2 s a caller) and the
    audit line."""
    room = runtime.reading_room()
    board = runtime.reading_board
    repeats = args.alone
    gc.collect()  # the seeding's garbage, not the reading list's
    parts: dict[str, list[float]] = defaultdict(list)
    pool_rows = 0

    @contextmanager
    def clocked(label: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        parts[label].append(time.perf_counter() - started)

    for n in range(repeats):
        key = keys[n % len(keys)]
        with runtime.sessions() as session, clocked(LIST_WHOLE):
            room.reading_list(session, key)
        with runtime.sessions() as session:
            with clocked("  board.current(): the check, no change"):
                board.current(session)
            with clocked("  radiologist(): roster + shifts of 50"):
                radiologist = room.radiologist(session, key, NOW)
        with runtime.sessions() as session, clocked("other: a claim's _top_unassigned(), in SQL"):
            pool_rows += room._top_unassigned(session, radiologist) is not None
        with runtime.sessions() as session, clocked("API, before: by_token()"):
            principal = by_token(session, tokens[key])
        assert principal is not None
        with clocked("API, after: audit.record(), queued"):
            runtime.audit.record(
                principal.username, principal.role.value, "read", f"/api/reading-list?r={key}", 200
            )
    for _ in range(max(3, repeats // 20)):
        board.forget()
        with runtime.sessions() as session, clocked("other: the board read in full"):
            board.current(session)
    calls = min(repeats, 10)
    with SqlLog(runtime.engine) as sql:
        for n in range(calls):
            with runtime.sessions() as session:
                room.reading_list(session, keys[n % len(keys)])
    statements = sql.lines(calls, "call")
    profile = None
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for n in range(repeats):
            with runtime.sessions() as session:
                room.reading_list(session, keys[n % len(keys)])
        profiler.disable()
        profile = profile_report(profiler)
    print_reading_parts(parts, pool_rows, statements, profile)
    return dict(parts), pool_rows


LIST_WHOLE = "reading_list (whole)"


def print_reading_parts(
    parts: dict[str, list[float]], pool_rows: int, statements: list[str], profile: str | None
) -> None:
    print(
        f"\n  in process, no HTTP (a new session per call; {pool_rows} claims' looks found a"
        " study to offer from the unassigned list):"
    )
    print(header("ms", "n"))
    listing = {label: seconds for label, seconds in parts.items() if label.startswith(" ")}
    print(row(LIST_WHOLE, len(parts[LIST_WHOLE]), parts[LIST_WHOLE]))
    for label, seconds in listing.items():
        print(row(label, len(seconds), seconds))
    rest = median(parts[LIST_WHOLE]) * 1000 - sum(median(s) * 1000 for s in listing.values())
    print(f"  {'  ≈ the rest: the list drawn from memory':<46}{'-':>7}{rest:>10.3f}")
    for label, seconds in parts.items():
        if label.startswith(("API", "other")):
            print(row(label, len(seconds), seconds))
    print("  SQL of reading_list, per call (execute() timed at the cursor; sqlite3 fetches after)")
    print("\n".join(statements))
    if profile:
        print(profile)


def print_reading(result: ReadingResult, args: argparse.Namespace) -> None:
    print(
        f"\n  over HTTP (uvicorn, one process, as 'up' serves it; clients: one keep-alive "
        f"connection each, in this process, on the same {os.cpu_count()} cores):"
    )
    print(
        f"  {'':<42}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'req/s':>8}{'failed':>8}"
    )
    for title, loads in (
        ("1 client", result.alone),
        (f"{args.clients} clients", result.concurrent),
    ):
        for name, got in loads.items():
            print(
                f"  {f'{title}: GET {name}':<42}{got.requests:>9}{got.ms(0.5):>9.1f}"
                f"{got.ms(0.95):>9.1f}{got.ms(0.99):>9.1f}{got.ms(1.0):>9.1f}"
                f"{got.rate:>8.0f}{len(got.failures):>8}"
            )
    listing, health = result.concurrent["reading-list"], result.concurrent["health"]
    alone_list, alone_health = result.alone["reading-list"], result.alone["health"]
    print(
        f"  reading-list / health: p95 {ratio(listing.ms(0.95), health.ms(0.95)):.1f}x with "
        f"{args.clients} clients, p50 {ratio(alone_list.ms(0.5), alone_health.ms(0.5)):.1f}x "
        f"alone; throughput {ratio(health.rate, listing.rate):.1f}x lower"
    )
    print(
        f"  a closed loop waits clients / throughput: {args.clients} / {listing.rate:.0f} req/s "
        f"= {ratio(args.clients, listing.rate) * 1000:.0f} ms a request (Little's law)"
    )
    for problem in result.contract:
        print(f"    CONTRACT {problem}")
    for name, got in [*result.alone.items(), *result.concurrent.items()]:
        if len(got.failures) >= MAX_FAILURES:
            print(f"    {name}: stopped after {len(got.failures)} failed requests")
        for failure in got.failures[:10]:
            print(f"    FAILED {name}: {failure}")


# ---------------------------------------------------------------- summary and entry


def print_summary(
    policy: PolicyResult, routing: RoutingResult, reading: ReadingResult, args: argparse.Namespace
) -> bool:
    """The targets with PASS/MISS; returns whether every request and check succeeded."""
    print("\n=== summary ===")
    decision = median(routing.per_decision) * 1000
    pure = median(policy.seconds) * 1000
    floor = median(routing.select_one) * 1000
    print(
        f"  routing, per decision on the database: median {decision:.2f} ms = "
        f"{ratio(decision, pure):.0f}x choose() alone ({pure:.3f} ms), "
        f"{ratio(decision, floor):.0f}x a SELECT 1 round trip ({floor:.3f} ms); "
        f"a pass with 1 study {median(routing.single) * 1000:.2f} ms"
    )
    print(
        f"  [{mark(decision < DECISION_TARGET_MS)}] routing decision under "
        f"{DECISION_TARGET_MS:g} ms: {decision:.2f} ms (median of pass / studies decided, "
        f"passes of up to 50)"
    )
    for line in list_verdicts(reading, args):
        against = f" ({line.reference}; {line.ratio:.1f}x)" if line.ratio is not None else ""
        print(
            f"  [{line.verdict}] {line.figure}: {line.value:.1f} ms, target {line.target}{against}"
        )
    failed = failed_checks(reading)
    print(f"  failed requests or contract checks: {failed}")
    return failed == 0


def list_verdicts(reading: ReadingResult, args: argparse.Namespace) -> list[Figure]:
    """The reading list's p95 against the target under each way of sending: beside the
    closed loop and the bursts, GET /health sent the same way (the server's floor)."""
    studies = f"{sum(reading.counts.values()):,} studies"
    shapes = {
        "": f"{args.clients} clients, each as soon as answered",
        IN_BURSTS: f"{args.clients} lists all at once (an event refreshes every screen)",
    }
    figures = []
    for suffix, how in shapes.items():
        listing = reading.concurrent[f"reading-list{suffix}"]
        health = reading.concurrent[f"health{suffix}"]
        figures.append(
            Figure(
                f"GET reading list, {how}, p95, {studies}",
                listing.ms(0.95),
                "ms",
                f"GET /health, same load, p95 {health.ms(0.95):.1f} ms",
                ratio(listing.ms(0.95), health.ms(0.95)),
                f"< {LIST_TARGET_MS:g} ms",
                mark(listing.ms(0.95) < LIST_TARGET_MS),
            )
        )
    for name, got in reading.concurrent.items():
        if name.startswith("reading-list, every"):
            pace = name.removeprefix("reading-list, ")
            figures.append(
                Figure(
                    f"GET reading list, {args.clients} lists refreshed {pace}, p95, {studies}",
                    got.ms(0.95),
                    "ms",
                    target=f"< {LIST_TARGET_MS:g} ms",
                    verdict=mark(got.ms(0.95) < LIST_TARGET_MS),
                )
            )
    return figures


def failed_checks(reading: ReadingResult) -> int:
    """Failed requests of every load and failed contract checks."""
    return len(reading.contract) + sum(
        len(got.failures) for got in [*reading.alone.values(), *reading.concurrent.values()]
    )


def headline(
    policy: PolicyResult, routing: RoutingResult, reading: ReadingResult, args: argparse.Namespace
) -> list[Figure]:
    """The summary as report rows: a decision against choose() alone and a SELECT 1, the
    reading list under load against GET /health under the same load, the failures."""
    decision = median(routing.per_decision) * 1000
    pure = median(policy.seconds) * 1000
    floor = median(routing.select_one) * 1000
    what = f"decision on the database (pass / decided), median, {args.open_studies:,} open studies"
    listing, health = reading.concurrent["reading-list"], reading.concurrent["health"]
    studies = f"{sum(reading.counts.values()):,} studies"
    figures = [
        Figure(
            what,
            decision,
            "ms",
            f"choose() alone {pure:.3f} ms",
            ratio(decision, pure),
            f"< {DECISION_TARGET_MS:g} ms",
            mark(decision < DECISION_TARGET_MS),
        ),
        Figure(what, decision, "ms", f"SELECT 1 round trip {floor:.3f} ms", ratio(decision, floor)),
        Figure("pass with 1 new study, median", median(routing.single) * 1000, "ms"),
        *list_verdicts(reading, args),
        Figure(
            f"GET reading list, {args.clients} clients, each as soon as answered, {studies}",
            listing.rate,
            "req/s",
            f"GET /health, same load, {health.rate:.0f} req/s",
            ratio(listing.rate, health.rate),
        ),
    ]
    failed = failed_checks(reading)
    figures.append(
        Figure(
            "failed requests or contract checks",
            failed,
            "failures",
            target="0",
            verdict=mark(failed == 0),
        )
    )
    return figures


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", help="PostgreSQL URL: a fresh schema, dropped after (default SQLite)"
    )
    parser.add_argument("--clients", type=int, default=50, help="reading-list clients at once")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per client")
    parser.add_argument("--studies", type=int, default=10_000, help="the reading-list database")
    parser.add_argument("--open-studies", type=int, default=5_000, help="in hand when routing")
    parser.add_argument("--new-studies", type=int, default=200, help="ready studies per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --new-studies")
    parser.add_argument("--single", type=int, default=20, help="passes with 1 new study")
    parser.add_argument("--decisions", type=int, default=3_000, help="choose() calls timed")
    parser.add_argument("--alone", type=int, default=100, help="requests of the lone client")
    parser.add_argument(
        "--think",
        type=float,
        default=1.0,
        help="also: the clients again, each waiting this many seconds after an answer",
    )
    parser.add_argument("--seed", type=int, default=20260302)
    parser.add_argument("--profile", action="store_true", help="cProfile a batch and a list")
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes")
    add_json_option(parser)
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # the API subprocess: its settings
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.studies, args.open_studies, args.new_studies, args.rounds = 2_000, 1_000, 50, 1
        args.single, args.decisions, args.alone = 5, 500, 20
        args.clients, args.requests = min(args.clients, 10), min(args.requests, 5)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve:
        return serve(args.serve, args.port)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    backend = args.database_url.split(":", 1)[0] if args.database_url else "sqlite (temporary)"
    print(
        f"routing benchmark: {os.cpu_count()} CPU cores, Python {sys.version.split()[0]}, "
        f"database {backend}, now {NOW:%Y-%m-%d %H:%M} UTC"
    )
    started = time.perf_counter()
    catalogue = load_catalogue(ROOT / "worklist/protocols.yaml")
    entries = radiologist_entries(RADIOLOGISTS)
    try:
        with tempfile.TemporaryDirectory(prefix="routing_bench_") as tmp:
            policy = bench_policy(args, catalogue, team_of(entries))
            print(header("ms", "n"))
            print(row("pure policy: choose()", len(policy.seconds), policy.seconds))
            print(
                f"  {policy.eligible:.1f} eligible per decision on average, "
                f"{policy.nobody} with nobody eligible"
            )
            routing = bench_routing_db(args, catalogue, entries, Path(tmp))
            reading = bench_reading(args, catalogue, entries, Path(tmp))
    except BenchError as exc:
        print(f"\nFAILED: {exc}")
        return 1
    ok = print_summary(policy, routing, reading, args)
    write_figures(args.json, "routing", headline(policy, routing, reading, args))
    print(f"\n(total {time.perf_counter() - started:.0f} s; the targets are informational)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
