"""Orthanc's REST API, through pyorthanc, with the answers we use typed.

pyorthanc returns ``dict | list | str | bytes | int``; this adapter checks the shape
and hands the services plain dataclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote

import httpx
from pyorthanc import Orthanc

# Orthanc's change types (OrthancServer/Sources/ServerEnumerations) that ingest follows.
NEW_INSTANCE = "NewInstance"
STABLE_STUDY = "StableStudy"


# Characters Orthanc's /tools/find reads as wildcards (``*``, ``?``) or as a list of
# values (``\``). DICOM matching has no escape for them.
_FIND_SPECIAL = str.maketrans({"*": "?", "\\": "?"})


class OrthancUnavailable(RuntimeError):
    """Orthanc did not answer, or answered something that is not its REST API."""


class UnknownModality(ValueError):
    """Orthanc has no DICOM modality (peer) under this AE title."""

    def __init__(self, ae_title: str) -> None:
        super().__init__(f"Orthanc knows no DICOM modality {ae_title!r}")
        self.ae_title = ae_title


class UnknownResource(ValueError):
    """An Orthanc ID given to send is not (or no longer) stored in Orthanc."""


@dataclass(frozen=True)
class Change:
    seq: int
    change_type: str
    resource_type: str
    orthanc_id: str


@dataclass(frozen=True)
class ChangesPage:
    changes: list[Change]
    last: int
    done: bool


@dataclass(frozen=True)
class Resource:
    """One patient, study, series or instance as ``/tools/bulk-content`` describes it."""

    orthanc_id: str
    level: str
    parent: str | None
    tags: dict[str, str]
    patient_tags: dict[str, str] = field(default_factory=dict)

    def tag(self, keyword: str) -> str | None:
        value = self.tags.get(keyword, "").strip()
        return value or None


@dataclass(frozen=True)
class StoredStudy:
    """A study as Orthanc holds it (``/tools/find`` expanded, study level)."""

    orthanc_id: str
    study_instance_uid: str
    accession_number: str | None
    study_date: str | None  # DICOM DA, YYYYMMDD
    study_description: str | None
    series_ids: tuple[str, ...]


@dataclass(frozen=True)
class JobStatus:
    """An Orthanc job (``/jobs/{id}``); ``state`` is Orthanc's own word for it."""

    job_id: str
    state: str  # Pending, Running, Success, Failure, Paused or Retry
    progress: int  # 0-100
    error: str | None  # set when the job failed
    instances_sent: int | None
    instances_total: int | None


_PARENT_KEYS = {
    "Instance": "ParentSeries",
    "Series": "ParentStudy",
    "Study": "ParentPatient",
}


def _string_tags(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    return {str(key): value for key, value in raw.items() if isinstance(value, str)}


def _resource(raw: object) -> Resource:
    if not isinstance(raw, dict) or "ID" not in raw or "Type" not in raw:
        raise OrthancUnavailable(f"unexpected resource description from Orthanc: {raw!r:.200}")
    level = str(raw["Type"])
    parent_key = _PARENT_KEYS.get(level)
    parent = raw.get(parent_key) if parent_key is not None else None
    return Resource(
        orthanc_id=str(raw["ID"]),
        level=level,
        parent=str(parent) if parent is not None else None,
        tags=_string_tags(raw.get("MainDicomTags")),
        patient_tags=_string_tags(raw.get("PatientMainDicomTags")),
    )


def _optional_tag(tags: dict[str, str], keyword: str) -> str | None:
    value = tags.get(keyword, "").strip()
    return value or None


def _stored_study(raw: object) -> tuple[str | None, StoredStudy]:
    """A study of an expanded ``/tools/find`` answer, with its patient's Patient ID."""
    resource = _resource(raw)
    series = raw.get("Series") if isinstance(raw, dict) else None
    uid = resource.tag("StudyInstanceUID")
    if resource.level != "Study" or uid is None or not isinstance(series, list):
        raise OrthancUnavailable(f"unexpected study description from Orthanc: {raw!r:.200}")
    study = StoredStudy(
        orthanc_id=resource.orthanc_id,
        study_instance_uid=uid,
        accession_number=resource.tag("AccessionNumber"),
        study_date=resource.tag("StudyDate"),
        study_description=resource.tag("StudyDescription"),
        series_ids=tuple(str(series_id) for series_id in series),
    )
    return _optional_tag(resource.patient_tags, "PatientID"), study


def _job_status(raw: object) -> JobStatus:
    if not isinstance(raw, dict) or "ID" not in raw or "State" not in raw:
        raise OrthancUnavailable(f"unexpected job description from Orthanc: {raw!r:.200}")
    state = str(raw["State"])
    content = raw.get("Content")
    content = content if isinstance(content, dict) else {}
    total = content.get("InstancesCount")
    failed = content.get("FailedInstancesCount")
    sent: int | None = None
    # Orthanc counts failures as they happen but successes only implicitly: the count
    # sent is known once the job is over, through every instance.
    if state == "Success" and isinstance(total, int) and isinstance(failed, int):
        sent = total - failed
    error: str | None = None
    if state == "Failure":
        description = str(raw.get("ErrorDescription") or "job failed")
        details = str(raw.get("ErrorDetails") or "").strip()
        error = f"{description}: {details}" if details else description
    return JobStatus(
        job_id=str(raw["ID"]),
        state=state,
        progress=max(0, min(100, int(raw.get("Progress", 0)))),
        error=error,
        instances_sent=sent,
        instances_total=total if isinstance(total, int) else None,
    )


def _orthanc_details(response: httpx.Response) -> str:
    """Orthanc's own explanation of an error answer (its JSON ``Details`` or ``Message``)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(body, dict):
        return str(body.get("Details") or body.get("Message") or "")
    return ""


class OrthancClient:
    """The calls the pipeline makes to Orthanc. Use as a context manager or ``close()``."""

    def __init__(
        self,
        url: str,
        auth: tuple[str, str],
        *,
        timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self._api = Orthanc(self.url, username=auth[0], password=auth[1], timeout=timeout)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> object:
        try:
            return cast(object, getattr(self._api, method)(*args, **kwargs))
        except httpx.HTTPStatusError as error:
            raise OrthancUnavailable(
                f"Orthanc answered {error.response.status_code} to "
                f"{error.request.method} {error.request.url.path}"
            ) from error
        except httpx.TransportError as error:
            raise OrthancUnavailable(f"Orthanc at {self.url} unreachable: {error}") from error
        except httpx.HTTPError as error:
            # pyorthanc turns an error status into a bare HTTPError carrying its text.
            raise OrthancUnavailable(f"Orthanc refused {method}: {error}") from error

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One REST call whose status the caller reads (pyorthanc's wrappers raise a bare
        ``httpx.HTTPError`` that hides it); only an unreachable Orthanc raises here."""
        try:
            response: httpx.Response = self._api.request(method, f"{self.url}{path}", **kwargs)
        except httpx.TransportError as error:
            raise OrthancUnavailable(f"Orthanc at {self.url} unreachable: {error}") from error
        return response

    def _json(self, response: httpx.Response) -> object:
        if response.status_code != httpx.codes.OK:
            raise OrthancUnavailable(
                f"Orthanc answered {response.status_code} to {response.request.method} "
                f"{response.request.url.path}: {_orthanc_details(response)}"
            )
        try:
            return cast(object, response.json())
        except ValueError as error:
            raise OrthancUnavailable(
                f"Orthanc's answer to {response.request.url.path} is not JSON"
            ) from error

    def lookup_study(self, study_instance_uid: str) -> str | None:
        """The Orthanc ID of the study with this Study Instance UID, or None."""
        answer = self._json(self._request("POST", "/tools/lookup", content=study_instance_uid))
        if not isinstance(answer, list):
            raise OrthancUnavailable("Orthanc's /tools/lookup is not a list")
        for item in answer:
            if isinstance(item, dict) and item.get("Type") == "Study" and "ID" in item:
                return str(item["ID"])
        return None

    def patient_studies(self, patient_id: str) -> list[StoredStudy]:
        """Every study Orthanc holds whose Patient ID is exactly ``patient_id``."""
        wanted = patient_id.strip()
        if not wanted:
            raise ValueError("patient_id must not be empty: it would match every study")
        # ``?`` matches the character itself, so the query still finds the patient; the
        # exact comparison below then drops whatever else the wildcard let through.
        query = {"PatientID": wanted.translate(_FIND_SPECIAL)}
        request = {"Level": "Study", "Expand": True, "Query": query}
        answer = self._json(self._request("POST", "/tools/find", json=request))
        if not isinstance(answer, list):
            raise OrthancUnavailable("Orthanc's /tools/find is not a list")
        found = (_stored_study(item) for item in answer)
        return [study for found_id, study in found if found_id == wanted]

    def modalities(self) -> list[str]:
        """The AE titles (symbolic names) of the DICOM peers Orthanc knows."""
        answer = self._json(self._request("GET", "/modalities"))
        if not isinstance(answer, list):
            raise OrthancUnavailable("Orthanc's /modalities is not a list")
        return [str(name) for name in answer]

    def store_to_modality(self, ae_title: str, orthanc_ids: Sequence[str]) -> str:
        """Start a C-STORE of these resources to a DICOM peer; returns Orthanc's job ID.

        Raises ``UnknownModality`` for an AE title Orthanc's configuration does not
        list and ``UnknownResource`` when an ID is not stored.
        """
        if not orthanc_ids:
            raise ValueError("nothing to send: no Orthanc ID given")
        request = {"Resources": list(orthanc_ids), "Asynchronous": True}
        response = self._request(
            "POST", f"/modalities/{quote(ae_title, safe='')}/store", json=request
        )
        if response.status_code == httpx.codes.NOT_FOUND:
            # Orthanc answers 404 both for an unknown modality and an unknown resource.
            if ae_title not in self.modalities():
                raise UnknownModality(ae_title)
            raise UnknownResource(
                f"Orthanc cannot send {list(orthanc_ids)} to {ae_title}: "
                f"{_orthanc_details(response)}"
            )
        if response.status_code == httpx.codes.BAD_REQUEST:
            raise UnknownResource(
                f"Orthanc refused to send {list(orthanc_ids)}: {_orthanc_details(response)}"
            )
        answer = self._json(response)
        if not isinstance(answer, dict) or "ID" not in answer:
            raise OrthancUnavailable(f"Orthanc started no job: {answer!r:.200}")
        return str(answer["ID"])

    def job(self, job_id: str) -> JobStatus | None:
        """Where an Orthanc job stands, or None when Orthanc does not know it."""
        response = self._request("GET", f"/jobs/{quote(job_id, safe='')}")
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        return _job_status(self._json(response))

    def changes(self, since: int, limit: int) -> ChangesPage:
        answer = self._call("get_changes", params={"since": since, "limit": limit})
        if not isinstance(answer, dict) or not isinstance(answer.get("Changes"), list):
            raise OrthancUnavailable("Orthanc's /changes is not a change list")
        changes = [
            Change(
                seq=int(item["Seq"]),
                change_type=str(item["ChangeType"]),
                resource_type=str(item["ResourceType"]),
                orthanc_id=str(item["ID"]),
            )
            for item in answer["Changes"]
        ]
        return ChangesPage(changes, last=int(answer["Last"]), done=bool(answer["Done"]))

    def describe(self, orthanc_ids: Sequence[str], level: str | None = None) -> list[Resource]:
        """Describe many resources in one call (``/tools/bulk-content``, Orthanc ≥ 1.9.4).

        With ``level``, Orthanc walks up or down to that level from each resource. A
        resource deleted in the meantime is simply absent from the answer.
        """
        if not orthanc_ids:
            return []
        request: dict[str, Any] = {"Resources": list(orthanc_ids), "Metadata": False}
        if level is not None:
            request["Level"] = level
        answer = self._call("post_tools_bulk_content", json=request)
        if not isinstance(answer, list):
            raise OrthancUnavailable("Orthanc's /tools/bulk-content is not a list")
        return [_resource(item) for item in answer]

    def series_files(self, orthanc_series_id: str) -> list[bytes]:
        """The DICOM files of every instance of a series, as Orthanc stored them."""
        answer = self._call("get_series_id", orthanc_series_id)
        if not isinstance(answer, dict) or not isinstance(answer.get("Instances"), list):
            raise OrthancUnavailable("Orthanc's series description has no instance list")
        files: list[bytes] = []
        for instance_id in answer["Instances"]:
            # Orthanc gzips what it sends when asked, and httpx asks: 10 ms a file instead
            # of 0.5 ms on the same machine. DICOM pixel data hardly compresses anyway.
            content = self._call(
                "get_instances_id_file", str(instance_id), headers={"Accept-Encoding": "identity"}
            )
            if not isinstance(content, bytes):
                raise OrthancUnavailable(f"Orthanc sent no file for instance {instance_id}")
            files.append(content)
        return files

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> OrthancClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
