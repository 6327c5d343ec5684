"""Orthanc delivers studies to the reading workstations, and a workstation queries and
retrieves from Orthanc itself: a real Orthanc, DCMTK's storescp as the workstation,
findscu and movescu as the workstation's query/retrieve client."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from mri_pipeline.domain.nodes import DicomNode, NodeRole, NodeTable
from mri_pipeline.orthanc import (
    JobStatus,
    OrthancClient,
    OrthancProcess,
    UnknownModality,
    UnknownResource,
    find_plugins,
    generated_configuration,
    orthanc_credentials,
)
from mri_pipeline.orthanc.process import WEB_VIEWER_PLUGIN
from tests.conftest import free_port
from tests.integration.dcmtk import Workstation, storescp
from tests.integration.orthanc_tools import (
    BASE_CONFIGURATION,
    NEEDS_ORTHANC,
    Patient,
    node_table,
    storescu,
    write_mr_series,
)

pytestmark = NEEDS_ORTHANC

WORKSTATION = "RAD_WS1"
SWITCHED_OFF = "RAD_WS2"  # listed in the node table; nothing listens on its port
FINISHED = ("Success", "Failure")


@dataclass
class StoredFiles:
    study_instance_uid: str
    sop_instance_uids: set[str]


@dataclass
class Site:
    orthanc: OrthancProcess
    client: OrthancClient
    workstation: Workstation
    images: Path

    def store_study(
        self,
        patient: Patient,
        accession_number: str,
        *,
        images: int = 4,
        series: int = 1,
        study_date: str = "20260302",
        study_description: str = "MRI LUMBAR SPINE",
    ) -> StoredFiles:
        """A study of ``series`` series, ``images`` instances in all, sent by the scanner."""
        uid = str(generate_uid())
        folder = self.images / uid
        stored = StoredFiles(uid, set())
        paths: list[Path] = []
        for number in range(1, series + 1):
            written = write_mr_series(
                folder,
                patient=patient,
                accession_number=accession_number,
                study_instance_uid=uid,
                description=f"SERIES {number}",
                images=images // series,
                series_number=number,
                size=8,
            )
            stored.sop_instance_uids.update(written.sop_instance_uids)
            paths += written.paths
        for path in paths:
            ds = dcmread(path)
            ds.StudyDate = study_date
            ds.StudyDescription = study_description
            ds.save_as(path, enforce_file_format=True)
        done = storescu(self.orthanc.dicom_port, paths, calling="MRI1")
        assert done.returncode == 0, done.stdout + done.stderr
        return stored

    def study_id(self, stored: StoredFiles) -> str:
        orthanc_id = self.client.lookup_study(stored.study_instance_uid)
        assert orthanc_id is not None
        return orthanc_id


def delivery_nodes(workstation_port: int, switched_off_port: int) -> NodeTable:
    """The committed node table, with the workstations on this test's ports."""
    ports = {WORKSTATION: workstation_port, SWITCHED_OFF: switched_off_port}
    return NodeTable(
        nodes=tuple(
            node.model_copy(update={"port": ports[node.ae_title]})
            if node.ae_title in ports
            else node
            for node in node_table().nodes
        )
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("delivery")
    workstation_port = free_port()
    orthanc = OrthancProcess(
        delivery_nodes(workstation_port, free_port()),
        var_dir=root / "var",
        base_configuration=BASE_CONFIGURATION,
        http_port=free_port(),
        dicom_port=free_port(),
    )
    received = root / "workstation"
    with (
        orthanc,
        storescp(WORKSTATION, workstation_port, received, root / "storescp.log") as station,
        OrthancClient(orthanc.url, orthanc_credentials(root / "var")) as client,
    ):
        yield Site(orthanc, client, station, root / "images")


def wait_for_job(client: OrthancClient, job_id: str, timeout: float = 20.0) -> JobStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = client.job(job_id)
        assert status is not None, f"Orthanc lost job {job_id}"
        if status.state in FINISHED:
            return status
        assert time.monotonic() < deadline, f"job {job_id} still {status.state}"
        time.sleep(0.05)


def study_root(
    tool: str,
    port: int,
    keys: Sequence[str],
    *,
    calling: str,
    called: str = "LSP_PACS",
    extra: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """``findscu -S`` or ``movescu -S`` (study root) against Orthanc."""
    command = [tool, "-S", "-to", "20", "-aet", calling, "-aec", called, *extra]
    for key in keys:
        command += ["-k", key]
    return subprocess.run(
        [*command, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def find_study(
    port: int, study_instance_uid: str, workdir: Path, *, calling: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, str]]]:
    workdir.mkdir(parents=True, exist_ok=True)
    keys = [
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={study_instance_uid}",
        "PatientID",
        "AccessionNumber",
        "NumberOfStudyRelatedInstances",
    ]
    done = study_root("findscu", port, keys, calling=calling, extra=["-X", "-od", str(workdir)])
    answers = [
        {
            "StudyInstanceUID": str(ds.StudyInstanceUID),
            "PatientID": str(ds.PatientID),
            "AccessionNumber": str(ds.AccessionNumber),
            "NumberOfStudyRelatedInstances": str(ds.NumberOfStudyRelatedInstances),
        }
        for ds in (dcmread(path) for path in sorted(workdir.glob("rsp*.dcm")))
    ]
    return done, answers


def move_study(
    port: int, study_instance_uid: str, *, calling: str, destination: str
) -> subprocess.CompletedProcess[str]:
    keys = ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study_instance_uid}"]
    return study_root("movescu", port, keys, calling=calling, extra=["-aem", destination])


# Delivery: Orthanc pushes (C-STORE SCU) to a workstation.


def test_a_study_sent_to_a_workstation_arrives_whole(site: Site) -> None:
    stored = site.store_study(Patient("WS0001", "SEND^WHOLE"), "LSPWS0001", images=12, series=2)
    job_id = site.client.store_to_modality(WORKSTATION, [site.study_id(stored)])
    status = wait_for_job(site.client, job_id)
    assert status.state == "Success", status.error
    assert status.progress == 100
    assert status.error is None
    assert (status.instances_sent, status.instances_total) == (12, 12)
    assert site.workstation.received(stored.study_instance_uid) == stored.sop_instance_uids


def test_sending_to_a_workstation_that_is_switched_off_fails_with_the_reason(
    site: Site,
) -> None:
    stored = site.store_study(Patient("WS0002", "SEND^OFF"), "LSPWS0002")
    job_id = site.client.store_to_modality(SWITCHED_OFF, [site.study_id(stored)])
    status = wait_for_job(site.client, job_id)
    assert status.state == "Failure"
    assert status.error is not None
    assert "refused" in status.error.lower()
    assert status.instances_sent is None
    assert status.instances_total == 4


def test_sending_to_an_ae_orthanc_does_not_know_raises_unknown_modality(site: Site) -> None:
    stored = site.store_study(Patient("WS0003", "SEND^NOPE"), "LSPWS0003")
    with pytest.raises(UnknownModality, match="NOPE") as raised:
        site.client.store_to_modality("NOPE", [site.study_id(stored)])
    assert raised.value.ae_title == "NOPE"


def test_sending_a_study_orthanc_does_not_hold_raises_unknown_resource(site: Site) -> None:
    missing = "e5195a9e-3b8a98bc-ddbd3b60-a2f36763-89a4a968"
    with pytest.raises(UnknownResource):
        site.client.store_to_modality(WORKSTATION, [missing])
    with pytest.raises(UnknownResource):
        site.client.store_to_modality(WORKSTATION, ["not-an-orthanc-id"])


def test_an_unknown_job_is_none(site: Site) -> None:
    assert site.client.job("00000000-0000-0000-0000-000000000000") is None


# Query/retrieve: the workstation asks Orthanc (C-FIND and C-MOVE SCP).


def test_a_workstation_finds_a_study_by_its_uid(site: Site, tmp_path: Path) -> None:
    stored = site.store_study(Patient("WS0004", "FIND^ME"), "LSPWS0004", images=6, series=2)
    done, answers = find_study(
        site.orthanc.dicom_port, stored.study_instance_uid, tmp_path, calling=WORKSTATION
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert answers == [
        {
            "StudyInstanceUID": stored.study_instance_uid,
            "PatientID": "WS0004",
            "AccessionNumber": "LSPWS0004",
            "NumberOfStudyRelatedInstances": "6",
        }
    ]


def test_a_workstation_retrieves_a_study_into_itself(site: Site) -> None:
    stored = site.store_study(Patient("WS0005", "MOVE^ME"), "LSPWS0005", images=6, series=2)
    done = move_study(
        site.orthanc.dicom_port,
        stored.study_instance_uid,
        calling=WORKSTATION,
        destination=WORKSTATION,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert site.workstation.received(stored.study_instance_uid) == stored.sop_instance_uids


def test_an_ae_not_in_the_node_table_can_neither_find_nor_move(site: Site, tmp_path: Path) -> None:
    # Orthanc accepts the association (echo is open to all) and aborts it at the C-FIND
    # or C-MOVE request; DCMTK 3.6.7's findscu and movescu still exit 0 after that.
    stored = site.store_study(Patient("WS0006", "ROGUE^PEER"), "LSPWS0006")
    found, answers = find_study(
        site.orthanc.dicom_port, stored.study_instance_uid, tmp_path, calling="ROGUE"
    )
    assert "Find Failed" in found.stderr, found.stdout + found.stderr
    assert "Peer aborted Association" in found.stderr
    assert answers == []
    moved = move_study(
        site.orthanc.dicom_port,
        stored.study_instance_uid,
        calling="ROGUE",
        destination=WORKSTATION,
    )
    assert "Move Request Failed" in moved.stderr, moved.stdout + moved.stderr
    assert "Peer aborted Association" in moved.stderr
    assert site.workstation.received(stored.study_instance_uid) == set()


# What Orthanc holds, through the REST client.


def test_patient_studies_lists_every_study_of_the_patient(site: Site) -> None:
    patient = Patient("WS0007", "TWO^STUDIES")
    first = site.store_study(patient, "LSPWS0007A", study_date="20260302")
    second = site.store_study(patient, "LSPWS0007B", study_date="20260309", series=2)
    site.store_study(Patient("WS00071", "OTHER^PATIENT"), "LSPWS0007C")
    studies = {s.study_instance_uid: s for s in site.client.patient_studies("WS0007")}
    assert set(studies) == {first.study_instance_uid, second.study_instance_uid}
    later = studies[second.study_instance_uid]
    assert later.orthanc_id == site.study_id(second)
    assert later.accession_number == "LSPWS0007B"
    assert later.study_date == "20260309"
    assert later.study_description == "MRI LUMBAR SPINE"
    assert len(later.series_ids) == 2
    assert site.client.patient_studies("NO-SUCH-PATIENT") == []


def test_a_patient_id_with_wildcards_matches_only_itself(site: Site) -> None:
    starred = site.store_study(Patient("WS*8", "STAR^ID"), "LSPWS0008A")
    site.store_study(Patient("WS008", "PLAIN^ID"), "LSPWS0008B")
    site.store_study(Patient("WSX8", "LOOKALIKE^ID"), "LSPWS0008C")
    assert [s.study_instance_uid for s in site.client.patient_studies("WS*8")] == [
        starred.study_instance_uid
    ]
    assert site.client.patient_studies("WS*") == []
    assert site.client.patient_studies("WS?8") == []
    assert site.client.patient_studies("WS008\\WSX8") == []


def test_an_empty_patient_id_is_refused_rather_than_matching_everyone(site: Site) -> None:
    with pytest.raises(ValueError, match="empty"):
        site.client.patient_studies("  ")


def test_lookup_study_finds_a_stored_study_and_none_for_an_unknown_uid(site: Site) -> None:
    stored = site.store_study(Patient("WS0009", "LOOK^UP"), "LSPWS0009")
    orthanc_id = site.client.lookup_study(stored.study_instance_uid)
    assert orthanc_id is not None
    [study] = site.client.patient_studies("WS0009")
    assert study.orthanc_id == orthanc_id
    assert site.client.lookup_study(str(generate_uid())) is None


# The browser side: the web viewer and DICOMweb plugins.


@pytest.mark.skipif(
    not any(plugin.name == WEB_VIEWER_PLUGIN for plugin in find_plugins()),
    reason="needs the Debian orthanc-webviewer package",
)
def test_the_web_viewer_shows_a_series_and_dicomweb_answers(site: Site) -> None:
    stored = site.store_study(Patient("WS0010", "VIEW^ME"), "LSPWS0010")
    [study] = site.client.patient_studies("WS0010")
    [series_id] = study.series_ids
    with httpx.Client(base_url=site.orthanc.url, auth=site.orthanc.auth, timeout=10) as http:
        viewer = http.get("/web-viewer/app/viewer.html", params={"series": series_id})
        assert viewer.status_code == 200
        assert "text/html" in viewer.headers["content-type"]
        # What viewer.html loads for ?series=<id>: one slice per instance.
        slices = http.get(f"/web-viewer/series/{series_id}")
        assert slices.status_code == 200
        assert len(slices.json()["Slices"]) == len(stored.sop_instance_uids)
        assert http.get("/dicom-web/studies").status_code == 200
    assert httpx.get(f"{site.orthanc.url}/web-viewer/app/viewer.html").status_code == 401
    cache = site.orthanc.root / "webviewer-cache"
    assert cache.is_dir()


# find_plugins and the plugins' configuration (pure: no Orthanc started).


def test_find_plugins_returns_every_known_plugin_installed(tmp_path: Path) -> None:
    assert find_plugins([tmp_path]) == []
    (tmp_path / "libOrthancWebViewer.so").write_bytes(b"")
    assert find_plugins([tmp_path]) == [tmp_path / "libOrthancWebViewer.so"]
    (tmp_path / "libOrthancDicomWeb.so").write_bytes(b"")
    (tmp_path / "libSomethingElse.so").write_bytes(b"")
    assert find_plugins([tmp_path]) == [
        tmp_path / "libOrthancDicomWeb.so",
        tmp_path / "libOrthancWebViewer.so",
    ]


def test_find_plugins_takes_each_plugin_from_the_first_folder_holding_it(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "libOrthancWebViewer.so").write_bytes(b"")
    (second / "libOrthancWebViewer.so").write_bytes(b"")
    (second / "libOrthancDicomWeb.so").write_bytes(b"")
    (first / "libOrthancDicomWeb.so").mkdir()  # not a file: ignored
    assert find_plugins([first, second]) == [
        second / "libOrthancDicomWeb.so",
        first / "libOrthancWebViewer.so",
    ]


def test_the_web_viewer_cache_is_configured_only_with_the_web_viewer(tmp_path: Path) -> None:
    nodes = NodeTable(
        nodes=(DicomNode(ae_title="MRI1", host="10.0.0.5", port=104, role=NodeRole.SCANNER),)
    )

    def configuration(plugins: list[Path]) -> dict[str, object]:
        return generated_configuration(
            nodes,
            http_port=8042,
            dicom_port=4242,
            storage_dir=tmp_path / "storage",
            index_dir=tmp_path / "index",
            credentials=("user", "secret"),
            plugins=plugins,
            web_viewer_cache_dir=tmp_path / "webviewer-cache",
        )

    viewer = Path("/plugins/libOrthancWebViewer.so")
    with_viewer = configuration([Path("/plugins/libOrthancDicomWeb.so"), viewer])
    assert with_viewer["WebViewer"] == {"CachePath": str(tmp_path / "webviewer-cache")}
    assert with_viewer["Plugins"] == ["/plugins/libOrthancDicomWeb.so", str(viewer)]
    assert "WebViewer" not in configuration([Path("/plugins/libOrthancDicomWeb.so")])
