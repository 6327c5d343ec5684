"""Orthanc's REST API, through pyorthanc, with the answers we use typed.

pyorthanc returns ``dict | list | str | bytes | int``; this adapter checks the shape
and hands the services plain dataclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
from pyorthanc import Orthanc

# Orthanc's change types (OrthancServer/Sources/ServerEnumerations) that ingest follows.
NEW_INSTANCE = "NewInstance"
STABLE_STUDY = "StableStudy"


class OrthancUnavailable(RuntimeError):
    """Orthanc did not answer, or answered something that is not its REST API."""


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
