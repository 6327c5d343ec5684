"""``mri-pipeline``: the command line of the product."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import date, datetime
from datetime import time as clock_time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from mri_pipeline import logsafe
from mri_pipeline.cli_tls import (
    console_context,
    ensure_demo_certificates,
    listening,
    orthanc_tls,
    tls_app,
    tls_findscu,
    tls_listener,
)
from mri_pipeline.cli_users import user_app
from mri_pipeline.config import Settings, get_settings
from mri_pipeline.dicom.server import DicomServerConfig, start_dicom_server
from mri_pipeline.domain.errors import DomainError
from mri_pipeline.domain.yaml_source import SourceError
from mri_pipeline.orthanc import OrthancProcess, OrthancStartError
from mri_pipeline.runtime import Runtime, build_runtime
from mri_pipeline.services.demo import ensure_demo_logins, load_demo_orders
from mri_pipeline.services.ingest import read_cursor, study_counts
from mri_pipeline.services.orders import OrderRejected, OrderRequest, PatientIn, create_order
from mri_pipeline.services.worklist import steps_of_day
from mri_pipeline.services.worklist_files import export_worklist_files, import_worklist_files

app = typer.Typer(help="Lumbar spine MRI pathway: orders, worklist, DICOM.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
order_app = typer.Typer(help="Referrals.", no_args_is_help=True)
dicom_app = typer.Typer(help="The DICOM server.", no_args_is_help=True)
worklist_app = typer.Typer(help="Worklist items and files.", no_args_is_help=True)
api_app = typer.Typer(help="The HTTP API.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(order_app, name="order")
app.add_typer(dicom_app, name="dicom")
app.add_typer(worklist_app, name="worklist")
app.add_typer(api_app, name="api")
ingest_app = typer.Typer(help="Following what Orthanc receives.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
scanner_app = typer.Typer(help="A simulated scanner console.", no_args_is_help=True)
app.add_typer(scanner_app, name="scanner")
samples_app = typer.Typer(help="Synthetic lumbar spine sample studies.", no_args_is_help=True)
app.add_typer(samples_app, name="samples")
app.add_typer(user_app, name="user")
app.add_typer(tls_app, name="tls")

console = Console()
err = Console(stderr=True)


def _setup_logging() -> None:
    logsafe.install()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def _runtime(settings: Settings | None = None) -> Runtime:
    try:
        return build_runtime(settings or get_settings())
    except (SourceError, ValueError) as exc:
        err.print(f"[red]cannot start:[/red] {exc}")
        raise typer.Exit(2) from exc


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the newest revision."""
    runtime = _runtime()
    console.print(f"database at newest schema: {runtime.engine.url.render_as_string()}")
    runtime.close()


@order_app.command("create")
def order_create(
    patient_id: Annotated[str, typer.Option(help="Patient ID (LO)")],
    name: Annotated[str, typer.Option(help="Patient name, Family^Given")],
    indication: Annotated[str, typer.Option(help="Indication code from the catalogue")],
    birth_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD or YYYYMMDD")] = None,
    sex: Annotated[str | None, typer.Option(help="M, F or O")] = None,
    weight_kg: Annotated[float | None, typer.Option()] = None,
    referring_physician: Annotated[str | None, typer.Option()] = None,
    red_flag: Annotated[list[str] | None, typer.Option(help="Red-flag code; repeatable")] = None,
    alert: Annotated[list[str] | None, typer.Option(help="Medical alert; repeatable")] = None,
    allergy: Annotated[list[str] | None, typer.Option(help="Allergy; repeatable")] = None,
    details: Annotated[str | None, typer.Option(help="Clinical details")] = None,
    station: Annotated[str | None, typer.Option(help="MR station AE title")] = None,
    scheduled_date: Annotated[str | None, typer.Option("--date")] = None,
    scheduled_time: Annotated[str | None, typer.Option("--time", help="HH:MM")] = None,
) -> None:
    """Accept a referral and book its worklist item."""
    try:
        request = OrderRequest(
            patient=PatientIn.model_validate(
                {
                    "patient_id": patient_id,
                    "name": name,
                    "birth_date": birth_date,
                    "sex": sex,
                    "weight_kg": weight_kg,
                    "medical_alerts": alert or [],
                    "allergies": allergy or [],
                }
            ),
            referring_physician=referring_physician,
            indication=indication,
            red_flags=red_flag or [],
            clinical_details=details,
            station=station,
            scheduled_date=date.fromisoformat(scheduled_date) if scheduled_date else None,
            scheduled_time=clock_time.fromisoformat(scheduled_time) if scheduled_time else None,
        )
    except (ValidationError, ValueError) as exc:
        err.print(f"[red]order refused:[/red] {exc}")
        raise typer.Exit(2) from exc
    runtime = _runtime()
    try:
        with runtime.sessions() as session, session.begin():
            created = create_order(session, runtime.desk, request)
    except OrderRejected as exc:
        for problem in exc.problems:
            err.print(
                f"[red]order refused:[/red] {'.'.join(problem.location[1:])}: {problem.message}"
            )
        raise typer.Exit(2) from exc
    finally:
        runtime.close()
    console.print(
        f"accession {created.accession_number}  {created.protocol_code}  {created.priority}  "
        f"{created.station_ae_title} {created.scheduled_start:%Y-%m-%d %H:%M}"
    )
    if created.not_indicated:
        console.print(f"[yellow]warning:[/yellow] {created.not_indicated}")


@worklist_app.command("import")
def worklist_import(paths: list[Path]) -> None:
    """Read DICOM worklist files (.wl) into the database; unreadable files are named."""
    runtime = _runtime()
    with runtime.sessions() as session, session.begin():
        report = import_worklist_files(session, paths)
    runtime.close()
    console.print(
        f"imported {len(report.imported)}, updated {len(report.updated)}, "
        f"failed {len(report.failed)}"
    )
    for path, reason in report.failed:
        err.print(f"[red]{path}[/red]: {reason}")
    if report.failed:
        raise typer.Exit(1)


@worklist_app.command("export")
def worklist_export(
    directory: Path,
    include_hidden: Annotated[bool, typer.Option(help="Also completed/cancelled")] = False,
) -> None:
    """Write worklist items as .wl files."""
    runtime = _runtime()
    with runtime.sessions() as session:
        written = export_worklist_files(session, directory, include_hidden=include_hidden)
    runtime.close()
    console.print(f"wrote {len(written)} worklist files to {directory}")


@worklist_app.command("list")
def worklist_list(day: Annotated[str | None, typer.Option("--date")] = None) -> None:
    """Today's (or a day's) scheduled steps."""
    runtime = _runtime()
    wanted = date.fromisoformat(day) if day else runtime.desk.local_now().date()
    table = Table("start", "station", "accession", "patient ID", "protocol", "priority", "status")
    with runtime.sessions() as session:
        for step in steps_of_day(session, wanted):
            table.add_row(
                f"{step.start_at:%H:%M}" if step.start_at else "",
                step.station_ae_title,
                step.accession_number,
                step.patient_id,
                step.procedure.protocol_code,
                step.procedure.priority,
                step.status,
            )
    runtime.close()
    console.print(table)


def _dicom_config(
    settings: Settings, host: str | None, port: int | None, ae_title: str | None, allow_any_ae: bool
) -> DicomServerConfig:
    return DicomServerConfig(
        ae_title=ae_title or settings.ae_title,
        host=host or settings.dicom_host,
        port=port if port is not None else settings.dicom_port,
        allow_any_ae=allow_any_ae or settings.allow_any_ae,
        max_associations=settings.max_associations,
        tls=tls_listener(settings),
        plain=settings.dicom_plain_enabled,
    )


def _stop_on_signal() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def _handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


def _wait_for_signal() -> None:
    _stop_on_signal().wait()


@dicom_app.command("serve")
def dicom_serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    ae_title: Annotated[str | None, typer.Option()] = None,
    allow_any_ae: Annotated[bool, typer.Option("--allow-any-ae")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="MPPS: refuse N-SET attributes not created (0106)")
    ] = False,
) -> None:
    """Serve Verification, Modality Worklist FIND and MPPS until interrupted."""
    _setup_logging()
    settings = get_settings()
    config = _dicom_config(settings, host, port, ae_title, allow_any_ae)
    runtime = _runtime(settings.model_copy(update={"mpps_strict": True}) if strict else settings)
    server = start_dicom_server(config, runtime.nodes, runtime.finder, runtime.mpps)
    for listening_port, what in listening(config):
        console.print(
            f"worklist and MPPS SCP {config.ae_title} on {config.host}:{listening_port}"
            + (f" ({what})" if what else ""),
            highlight=False,
        )
    try:
        _wait_for_signal()
    finally:
        server.shutdown()
        runtime.close()


@api_app.command("serve")
def api_serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Serve the HTTP API until interrupted."""
    from mri_pipeline.api.app import create_app

    _setup_logging()
    runtime = _runtime()
    try:
        uvicorn.run(
            create_app(runtime),
            host=host or runtime.settings.api_host,
            port=port or runtime.settings.api_port,
            log_level="info",
        )
    finally:
        runtime.close()


@ingest_app.command("run")
def ingest_run() -> None:
    """Follow Orthanc's change log until interrupted (Orthanc must be running)."""
    _setup_logging()
    runtime = _runtime()
    stop = _stop_on_signal()
    orthanc = runtime.orthanc_client()
    console.print(
        f"ingest following {orthanc.url}/changes from change {runtime.ingest(orthanc).cursor()}",
        highlight=False,
    )
    try:
        runtime.ingest(orthanc).run(stop, interval=runtime.settings.ingest_poll_interval)
    finally:
        orthanc.close()
        runtime.close()


@ingest_app.command("status")
def ingest_status() -> None:
    """Studies received, by state and by reconciliation outcome."""
    runtime = _runtime()
    try:
        with runtime.sessions() as session:
            counts = study_counts(session)
            cursor = read_cursor(session)
        table = Table("studies", "count")
        for name, count in sorted(counts.items()):
            table.add_row(name, str(count))
        console.print(table)
        console.print(f"change log cursor: {cursor}")
    finally:
        runtime.close()


@samples_app.command("generate")
def samples_generate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write")] = Path("sample_studies"),
) -> None:
    """Write the deterministic sample studies and their manifest."""
    from mri_pipeline.imaging.sample_studies import generate_sample_studies

    started = time.monotonic()
    manifest = generate_sample_studies(out)
    files = [path for path in out.rglob("*") if path.is_file()]
    size = sum(path.stat().st_size for path in files)
    console.print(
        f"{len(manifest.cases)} cases, {len(files)} files, {size / 1e6:.1f} MB in {out} "
        f"({time.monotonic() - started:.1f} s)",
        highlight=False,
    )


@scanner_app.command("simulate")
def scanner_simulate(
    station: Annotated[str, typer.Option("--station", help="The console's AE title")] = "MRI1",
    accession: Annotated[
        str | None, typer.Option("--accession", help="Default: the next waiting item")
    ] = None,
    discontinue: Annotated[
        str | None,
        typer.Option("--discontinue", help="Stop half-way with this DCM reason code, e.g. 110515"),
    ] = None,
    samples: Annotated[Path, typer.Option("--samples")] = Path("sample_studies"),
    case: Annotated[
        str | None, typer.Option("--case", help="Sample case; default: by protocol")
    ] = None,
    optional: Annotated[
        bool, typer.Option("--optional", help="Also run the protocol's optional series")
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Where the RIS and Orthanc run")] = (
        "127.0.0.1"
    ),
    tls: Annotated[
        bool, typer.Option("--tls", help="Worklist and MPPS over DICOM TLS (the TLS port)")
    ] = False,
    tls_certificate: Annotated[
        Path | None, typer.Option(help="The console's certificate; default the demo one")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="Its private key; default the demo one")
    ] = None,
) -> None:
    """One examination as a console does it: worklist, MPPS, C-STORE, MPPS final.

    C-STORE goes over DICOM TLS when Orthanc's DICOM port speaks it
    (MRI_PIPELINE_ORTHANC_DICOM_TLS)."""
    from mri_pipeline.dicom.exam_card import CASE_BY_PROTOCOL, DEFAULT_CASE, exam_card
    from mri_pipeline.dicom.scanner import (
        ConsoleError,
        Peer,
        ScannerConsole,
        perform,
        protocol_code,
        waiting,
    )
    from mri_pipeline.domain.mpps import DISCONTINUATION_REASONS
    from mri_pipeline.imaging.sample_studies import load_manifest
    from mri_pipeline.orthanc import configured_ae_title
    from mri_pipeline.services.reference import load_catalogue, load_node_table

    logging.getLogger("pynetdicom").setLevel(logging.ERROR)
    settings = get_settings()
    try:
        nodes = load_node_table(settings.nodes_file)
        catalogue = load_catalogue(settings.protocols_file)
    except SourceError as exc:
        err.print(f"[red]cannot start:[/red] {exc}")
        raise typer.Exit(2) from exc
    node = nodes.get(station)
    if node is None or node not in nodes.scanners():
        known = ", ".join(n.ae_title for n in nodes.scanners())
        err.print(f"[red]{station} is not a scanner in {settings.nodes_file}[/red] ({known})")
        raise typer.Exit(2)
    if discontinue is not None and discontinue not in DISCONTINUATION_REASONS:
        codes = "\n".join(f"  {code} {text}" for code, text in DISCONTINUATION_REASONS.items())
        err.print(f"[red]unknown discontinuation reason {discontinue}[/red]; one of:\n{codes}")
        raise typer.Exit(2)
    context = None
    if tls or settings.orthanc_dicom_tls:
        context = console_context(settings, tls_certificate, tls_key)
    scanner = ScannerConsole(
        station,
        ris=(
            Peer(host, settings.dicom_tls_port, settings.ae_title, context)
            if tls
            else Peer(host, settings.dicom_port, settings.ae_title)
        ),
        pacs=Peer(
            host,
            settings.orthanc_dicom_port,
            configured_ae_title(settings.orthanc_config_file),
            context if settings.orthanc_dicom_tls else None,
        ),
    )
    try:
        items = scanner.worklist(accession=accession or "")
        candidates = items if accession else waiting(items)
        if not candidates:
            what = f"accession {accession}" if accession else f"anything waiting for {station}"
            err.print(f"[red]the worklist has no {what}[/red]")
            raise typer.Exit(1)
        item = candidates[0]
        code = protocol_code(item)
        if code is None or code not in catalogue.protocol_codes:
            err.print(f"[red]worklist item has no known protocol code ({code})[/red]")
            raise typer.Exit(1)
        chosen_case = case or CASE_BY_PROTOCOL.get(code, DEFAULT_CASE)
        try:
            manifest = load_manifest(samples)
            plan = exam_card(
                catalogue.protocol(code),
                manifest.case(chosen_case).paths_by_description(samples),
                manifest.case(DEFAULT_CASE).paths_by_description(samples),
                include_optional=optional,
            )
        except (OSError, KeyError, ValueError) as exc:
            err.print(f"[red]sample studies unusable in {samples}:[/red] {exc}")
            raise typer.Exit(2) from exc
        total = sum(len(series.templates) for series in plan)
        if discontinue is not None:
            total = sum(len(series.templates) for series in plan[: max(1, len(plan) // 2)])
        console.print(
            f"{station}: accession {item.get('AccessionNumber', '')}, patient ID "
            f"{item.get('PatientID', '')}, protocol {code} ({len(plan)} series, "
            f"sample case {chosen_case})",
            highlight=False,
        )
        zone = ZoneInfo(settings.clinic_timezone)
        with Progress(console=console, transient=False) as progress:
            task = progress.add_task("C-STORE", total=total)
            done = perform(
                scanner,
                item,
                plan,
                clock=lambda: datetime.now(zone),
                discontinue=discontinue,
                progress=lambda _ds: progress.advance(task),
            )
    except ConsoleError as exc:
        err.print(f"[red]{station}:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"MPPS {done.status}: {done.stored} images stored in {len(done.series)} series, "
        f"{len(done.failed)} refused",
        highlight=False,
    )
    if done.failed:
        raise typer.Exit(1)


def _start_workers(runtime: Runtime) -> tuple[list[threading.Thread], threading.Event]:
    """Ingest and QC, each a thread with its own Orthanc client, and routing (database
    only), stopped by one event."""
    from mri_pipeline.services.qc import QcWorker

    stop = threading.Event()
    interval = runtime.settings.ingest_poll_interval
    threads: list[threading.Thread] = []
    if runtime.settings.routing_enabled:
        desk = runtime.routing_desk()
        routing = threading.Thread(
            target=lambda: desk.run(stop, interval=runtime.settings.routing_poll_interval),
            name="routing",
            daemon=True,
        )
        routing.start()
        threads.append(routing)
    for name in ("ingest", "qc"):
        orthanc = runtime.orthanc_client()
        worker = (
            runtime.ingest(orthanc)
            if name == "ingest"
            else QcWorker(runtime.sessions, orthanc, runtime.catalogue, clock=runtime.clock)
        )

        def _loop(worker: Any = worker, orthanc: Any = orthanc) -> None:
            try:
                worker.run(stop, interval=interval)
            finally:
                orthanc.close()

        thread = threading.Thread(target=_loop, name=name, daemon=True)
        thread.start()
        threads.append(thread)
    return threads, stop


@app.command("up")
def up(
    demo: Annotated[bool, typer.Option("--demo", help="Book today's demo referrals")] = False,
    allow_any_ae: Annotated[bool, typer.Option("--allow-any-ae")] = False,
) -> None:
    """Start the whole system (Orthanc, DICOM server, API) until Ctrl-C."""
    from mri_pipeline.api.app import create_app

    _setup_logging()
    runtime = _runtime()
    settings = runtime.settings
    if demo:
        try:
            with runtime.sessions() as session, session.begin():
                booked = load_demo_orders(session, runtime.desk, settings.demo_orders_file)
        except (OrderRejected, DomainError, SourceError) as exc:
            err.print(f"[red]demo orders refused:[/red] {exc}")
            raise typer.Exit(2) from exc
        console.print(
            f"demo: booked {len(booked)} referrals for today"
            if booked
            else "demo: today's referrals already booked"
        )
        logins_file = settings.var_dir / "demo-logins.json"
        with runtime.sessions.begin() as session:
            logins = ensure_demo_logins(session, logins_file, runtime.clock())
        console.print(
            f"demo: logins {', '.join(logins)} (passwords in {logins_file})", highlight=False
        )
        ensure_demo_certificates(settings)
    config = _dicom_config(settings, None, None, None, allow_any_ae)
    orthanc = _start_orthanc(runtime) if settings.orthanc_enabled else None
    server = None
    workers: tuple[list[threading.Thread], threading.Event] | None = None
    try:
        server = start_dicom_server(config, runtime.nodes, runtime.finder, runtime.mpps)
        if settings.ingest_enabled and orthanc is not None:
            workers = _start_workers(runtime)
        shown_host = "127.0.0.1" if config.host == "0.0.0.0" else config.host
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        lines = [
            "[bold]MRI pipeline is up[/bold]",
            f"  screens (log in)    {api_url}/login",
            f"  API                 {api_url}/docs (token: mri-pipeline user add NAME --role R)",
            f"  worklist (JSON)     {api_url}/api/worklist",
            f"  studies (JSON)      {api_url}/api/studies",
            f"  reading list        {api_url}/radiologist",
            f"  health              {api_url}/health",
            *_dicom_addresses(config, orthanc, shown_host),
        ]
        if orthanc is not None:
            lines.append(
                f"  Orthanc             {orthanc.url} (credentials in "
                f"{settings.var_dir / 'orthanc' / 'credentials.json'})"
            )
        if workers is not None:
            lines.append("  ingest and QC       following Orthanc's change log")
            if settings.routing_enabled:
                lines.append("  routing             assigning QC-cleared studies to radiologists")
        lines += [*_try_commands(settings, config, shown_host), "  Ctrl-C stops everything."]
        console.print("\n".join(lines), highlight=False)
        uvicorn.run(
            create_app(runtime),
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
        )
    finally:
        if server is not None:
            server.shutdown()
        if workers is not None:
            threads, stop = workers
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
        if orthanc is not None:
            orthanc.stop()
        runtime.close()


def _dicom_addresses(
    config: DicomServerConfig, orthanc: OrthancProcess | None, host: str
) -> list[str]:
    lines = [
        f"  DICOM worklist AE   {config.ae_title} @ {host}:{port} (MWL, MPPS"
        + (f"; {what})" if what else ")")
        for port, what in listening(config)
    ]
    if orthanc is not None:
        lines.append(
            f"  DICOM store AE      {orthanc.ae_title} @ 127.0.0.1:{orthanc.dicom_port}"
            + (" (DICOM TLS only)" if orthanc.tls is not None else "")
        )
    return lines


def _try_commands(settings: Settings, config: DicomServerConfig, host: str) -> list[str]:
    keys = "-k 0010,0010 -k 0010,0020 -k 0008,0050 -k '0040,0100[0].0040,0001=MRI1'"
    lines = []
    if config.plain:
        lines.append(f"  try: findscu -W -aec {config.ae_title} {host} {config.port} {keys}")
    if config.tls is not None:
        findscu = tls_findscu(settings, host, config.tls.port, config.ae_title)
        lines.append(f"  try over TLS: {findscu} {keys}")
    simulate = "mri-pipeline scanner simulate --station MRI1"
    lines.append(f"  play a console: {simulate}" + ("" if config.plain else " --tls"))
    if config.plain and config.tls is not None:
        lines.append(f"  ... over DICOM TLS: {simulate} --tls")
    return lines


def _start_orthanc(runtime: Runtime) -> OrthancProcess:
    settings = runtime.settings
    orthanc = OrthancProcess(
        runtime.nodes,
        var_dir=settings.var_dir,
        base_configuration=settings.orthanc_config_file,
        http_port=settings.orthanc_http_port,
        dicom_port=settings.orthanc_dicom_port,
        executable=settings.orthanc_executable,
        startup_timeout=settings.orthanc_startup_timeout,
        tls=orthanc_tls(settings),
    )
    try:
        orthanc.start()
    except (OrthancStartError, OSError) as exc:
        err.print(f"[red]Orthanc did not start:[/red] {exc}")
        runtime.close()
        raise typer.Exit(2) from exc
    return orthanc
