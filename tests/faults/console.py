"""A scanner console that keeps at it, and the examination it performs in the fault
tests: the suspected cauda equina card, made of the sample images and thinned."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from mri_pipeline.dicom.console_messages import MR_IMAGE_STORAGE
from mri_pipeline.dicom.exam_card import exam_card
from mri_pipeline.dicom.mpps import MODALITY_PERFORMED_PROCEDURE_STEP as MPPS
from mri_pipeline.dicom.scanner import (
    ConsoleError,
    Examination,
    PlannedSeries,
    ScannerConsole,
    StoreOutcome,
    perform,
)
from mri_pipeline.domain.mpps import (
    DUPLICATE_SOP_INSTANCE,
    NO_LONGER_UPDATABLE_ERROR_ID,
    PROCESSING_FAILURE,
)
from mri_pipeline.services.reference import load_catalogue
from tests.conftest import ROOT, fixed_clock
from tests.integration.test_qc_pipeline import sample_series

T = TypeVar("T")

SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
# Every second sagittal and every sixth axial slice: the same coverage, far fewer images.
THINNED = {"SAG": 2, "AX": 6}


@cache
def cauda_equina_card() -> tuple[PlannedSeries, ...]:
    """The suspected cauda equina exam card (LSP-CES: localiser, sagittal and axial T2)
    made of the normal sample case, its stacks thinned: 17 images, and QC still passes
    them (so the study is routed)."""
    normal = sample_series("normal")
    catalogue = load_catalogue(ROOT / "worklist/protocols.yaml")
    card = exam_card(catalogue.protocol("LSP-CES"), normal, normal)
    return tuple(
        PlannedSeries(s.description, s.templates[:: THINNED.get(s.description.split()[0], 1)])
        for s in card
    )


class NoAnswer(ConsoleError):
    """The association ended (or timed out) before the answer came."""


class FailureStatus(ConsoleError):
    """The peer answered with a failure status worth repeating the request for."""


class PersistentConsole(ScannerConsole):
    """A console that keeps at it, as a real console's queue does: what the RIS or the
    PACS did not acknowledge (no association, no answer, a processing failure) is sent
    again after a pause, until ``patience`` runs out. A repeated MPPS answered "already
    there" (created, or completed, by an attempt whose answer was lost) counts as done;
    any other refusal fails the test. It counts what it sent and what it repeated."""

    def __init__(self, *args: Any, patience: float = 120, pause: float = 0.2, **kw: Any) -> None:
        super().__init__(*args, timeout=20, **kw)
        self.patience = patience
        self.pause = pause
        self.attempts: Counter[str] = Counter()  # operation → requests sent
        # (operation, why) → attempts repeated: FailureStatus (answered with a failure),
        # NoAnswer, ConsoleError (no association) or RuntimeError (association aborted)
        self.repeated: Counter[tuple[str, str]] = Counter()
        self.failures: Counter[tuple[str, int]] = Counter()  # failure statuses answered
        self.sent: Counter[str] = Counter()  # SOP Instance UID → C-STOREs

    def _again(self, operation: str, attempt: Callable[[int], T]) -> T:
        deadline = time.monotonic() + self.patience
        for number in itertools.count(1):
            self.attempts[operation] += 1
            try:
                return attempt(number)
            except RuntimeError as error:  # ConsoleError, or pynetdicom on an aborted association
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.station} {operation}: {error}") from error
                self.repeated[operation, type(error).__name__] += 1
                time.sleep(self.pause)
        raise AssertionError("itertools.count ended")

    def worklist(self, *, accession: str = "") -> list[Dataset]:
        def attempt(_number: int) -> list[Dataset]:
            try:
                return ScannerConsole.worklist(self, accession=accession)
            except ConsoleError as error:
                if "query failed with status" in str(error):
                    raise FailureStatus(str(error)) from error
                raise

        return self._again("C-FIND", attempt)

    def _mpps(self, send: Callable[[Any], tuple[Dataset | None, Any]]) -> None:
        def attempt(number: int) -> None:
            assoc = self._associate(self.ris, [(MPPS, SYNTAXES)])
            try:
                status, _ = send(assoc)
            finally:
                assoc.release()
            if status is None or "Status" not in status:
                raise NoAnswer("no answer to the MPPS request")
            code = int(status.Status)
            done_before = code == DUPLICATE_SOP_INSTANCE or (
                status.get("ErrorID") == NO_LONGER_UPDATABLE_ERROR_ID
            )
            if code == 0x0000 or (number > 1 and done_before):
                return
            self.failures["MPPS", code] += 1
            if code == PROCESSING_FAILURE and "ErrorID" not in status:
                raise FailureStatus(f"MPPS: 0x{code:04X} {status.get('ErrorComment', '')}")
            raise AssertionError(f"{self.station} MPPS refused: {status}")

        self._again("MPPS", attempt)

    def store(
        self, datasets: Iterable[Dataset], *, progress: Callable[[Dataset], None] | None = None
    ) -> StoreOutcome:
        """C-STORE until the PACS has acknowledged every image; after a broken association
        the unacknowledged ones are sent again (Orthanc keeps the first copy of one it
        had received without answering)."""
        waiting = list(datasets)
        outcome = StoreOutcome()

        def attempt(_number: int) -> None:
            assoc = self._associate(self.pacs, [(MR_IMAGE_STORAGE, SYNTAXES)])
            try:
                while waiting:
                    self.sent[str(waiting[0].SOPInstanceUID)] += 1
                    status = assoc.send_c_store(waiting[0])
                    if status is None or "Status" not in status:
                        raise NoAnswer("no answer to a C-STORE")
                    code = int(status.Status)
                    if code != 0x0000 and code >> 12 != 0xB:
                        self.failures["C-STORE", code] += 1
                        raise FailureStatus(f"C-STORE failed with 0x{code:04X}")
                    outcome.stored.append(waiting.pop(0))
                    if progress is not None:
                        progress(outcome.stored[-1])
            finally:
                assoc.release()

        self._again("C-STORE", attempt)
        return outcome

    def resent(self) -> int:
        """Images sent more than once."""
        return sum(count - 1 for count in self.sent.values())


def examine(
    console: ScannerConsole, accession: str, card: Sequence[PlannedSeries], *, pace: float = 0
) -> Examination:
    """The examination as the console performs it, its images ``pace`` seconds apart (as
    they come off the reconstructor)."""
    [item] = console.worklist(accession=accession)
    return perform(console, item, card, clock=fixed_clock, progress=lambda _: time.sleep(pace))
