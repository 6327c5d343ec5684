"""Consoles sending mangled MPPS N-CREATE and N-SET: a DIMSE status each time, nothing lost.

A hypothesis state machine books examinations and plays consoles that send valid,
mutated, repeated and out-of-order MPPS messages. After every step the database must
agree with what the server accepted, and a step once COMPLETED stays COMPLETED.
"""

from __future__ import annotations

import copy
import itertools
from datetime import datetime
from typing import ClassVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from sqlalchemy import select

from mri_pipeline.db.models import PerformedStep, ScheduledStep
from mri_pipeline.dicom.console_messages import PerformedSeries, mpps_final, mpps_in_progress
from mri_pipeline.domain.mpps import NO_LONGER_UPDATABLE_ERROR_ID, PerformedStatus
from mri_pipeline.runtime import Runtime
from tests.hostile.conftest import fuzz_settings
from tests.hostile.dicom_wire import (
    Outcome,
    Peer,
    assert_still_serving,
    encode_dataset,
    watching_for_crashes,
)
from tests.integration.test_mwl_scp import book

pytestmark = [pytest.mark.db, pytest.mark.filterwarnings("ignore::UserWarning")]

# DOMAIN.md E.4: every status this SCP may answer to an N-CREATE or N-SET.
MPPS_STATUSES = frozenset(
    {0x0000, 0x0105, 0x0106, 0x0107, 0x0110, 0x0111, 0x0112, 0x0116, 0x0117, 0x0120, 0x0121}
)
STARTED = datetime(2026, 3, 2, 8, 10)
ENDED = datetime(2026, 3, 2, 8, 35)
REASONS = ["110500", "110501", "110514", "110528", "999999", ""]

HOSTILE_TEXT = st.one_of(
    st.sampled_from(
        ["", " ", "DONE", "completed", "IN PROGRESS", "2026-13-45", "25:61:00", "A\\B", "*"]
    ),
    st.text(max_size=30),
    st.integers(17, 400).map(lambda n: "X" * n),
    st.just("\0\0"),
)


def hostile_element(tag: int, data: st.DataObject) -> DataElement:
    """A value for ``tag`` that a careless or broken console might send."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        vr = "LO"
    kind = data.draw(st.sampled_from(["text", "bytes", "sequence"]))
    if kind == "bytes" or (kind == "text" and vr == "SQ"):
        # Sent as they are, under the tag's own VR (dicom_wire.elements_of_dataset).
        return DataElement(tag, "OB", data.draw(st.binary(max_size=40)))
    if kind == "sequence":
        items = []
        for _ in range(data.draw(st.integers(0, 2))):
            item = Dataset()
            if data.draw(st.booleans()):
                item.add(DataElement(0x00080100, "SH", data.draw(HOSTILE_TEXT)))
            items.append(item)
        return DataElement(tag, "SQ", Sequence(items))
    if " or " in vr:  # "US or SS", "OB or OW": ambiguous in the dictionary
        vr = "LO"
    return DataElement(tag, vr, data.draw(HOSTILE_TEXT))


def element_paths(dataset: Dataset) -> list[tuple[Dataset, int]]:
    """Every (containing data set, tag) pair, nested items included."""
    paths = []
    for element in dataset:
        paths.append((dataset, int(element.tag)))
        if element.VR == "SQ" and element.value:
            for item in element.value:
                paths.extend(element_paths(item))
    return paths


def mutate(dataset: Dataset, data: st.DataObject) -> Dataset:
    """A copy with one to three attributes deleted, replaced or added."""
    mutated = copy.deepcopy(dataset)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = element_paths(mutated)
        operation = data.draw(st.sampled_from(["delete", "replace", "add"]))
        if operation == "add" or not paths:
            tag = data.draw(
                st.one_of(
                    st.sampled_from([0x00091010, 0x00400281, 0x00400252, 0x00400250, 0x7FE00010]),
                    st.integers(0x00080000, 0x7FDFFFFF).map(lambda t: t & ~0xFF),
                )
            )
            mutated[tag] = hostile_element(tag, data)
            continue
        parent, tag = data.draw(st.sampled_from(paths))
        if operation == "delete":
            del parent[tag]
        else:
            parent[tag] = hostile_element(tag, data)
    return mutated


def payload(dataset: Dataset, implicit: bool) -> bytes:
    return encode_dataset(dataset, implicit=implicit)


class MppsConsoles(RuleBasedStateMachine):
    runtime: ClassVar[Runtime]
    port: ClassVar[int]
    numbers = itertools.count(1)

    examinations = Bundle("examinations")

    def __init__(self) -> None:
        super().__init__()
        self.peer = Peer(self.port, ae_title="MRI1")
        self.expected: dict[str, str] = {}  # SOP Instance UID -> status the server accepted
        self.completed_steps: set[int] = set()
        self.watch = watching_for_crashes()
        self.crashes = self.watch.__enter__()

    def teardown(self) -> None:
        self.watch.__exit__(None, None, None)

    def check(self, outcome: Outcome) -> int:
        assert not outcome.aborted, "the server aborted the association"
        [status] = outcome.statuses
        assert self.crashes.take() == []
        assert status in MPPS_STATUSES, hex(status)
        if status == 0x0110:
            assert outcome.last_status is not None
            assert outcome.last_status.get("ErrorID") == NO_LONGER_UPDATABLE_ERROR_ID
        return status

    def _book(self) -> Dataset:
        number = next(self.numbers)
        accession = book(self.runtime, f"MPPS{number:05d}", f"Fuzz^Patient{number}", "MRI1")
        with self.runtime.sessions() as session:
            step = session.execute(
                select(ScheduledStep).where(ScheduledStep.accession_number == accession)
            ).scalar_one()
            return Dataset.from_json(step.dataset_json)

    def _create(self, item: Dataset) -> None:
        uid = str(generate_uid())
        dataset = mpps_in_progress([item], station="MRI1", started=STARTED)
        status = self.check(self.peer.n_create(uid, payload(dataset, True), implicit=True))
        assert status == 0x0000, hex(status)
        self.expected[uid] = PerformedStatus.IN_PROGRESS.value

    @initialize(target=examinations)
    def an_examination_under_way(self) -> Dataset:
        item = self._book()
        self._create(item)
        return item

    @rule(target=examinations)
    def book_an_examination(self) -> Dataset:
        return self._book()

    @rule(
        item=st.one_of(st.none(), examinations),
        mangled=st.integers(0, 3),
        uid_kind=st.sampled_from(["new", "new", "new", "known", "none"]),
        implicit=st.booleans(),
        data=st.data(),
    )
    def n_create(
        self,
        item: Dataset | None,
        mangled: int,
        uid_kind: str,
        implicit: bool,
        data: st.DataObject,
    ) -> None:
        """As a console sends it (one time in four), or with attributes deleted, replaced
        or added; the SOP Instance UID new, already known, or absent."""
        if not mangled and item is not None:
            self._create(item)
            return
        uid: str | None = str(generate_uid())
        if uid_kind == "known":
            uid = data.draw(st.sampled_from(sorted(self.expected)))
        elif uid_kind == "none":
            uid = None
        items = [item] if item is not None else []
        dataset = mpps_in_progress(items, station="MRI1", started=STARTED)
        if mangled:
            dataset = mutate(dataset, data)
        outcome = self.peer.n_create(uid, payload(dataset, implicit), implicit=implicit)
        status = self.check(outcome)
        if uid is None:
            assert status == 0x0117, hex(status)
        elif uid_kind == "known":
            assert status in (0x0111, 0x0106), hex(status)  # 0106: undecodable, found first
        elif status == 0x0000:
            self.expected[uid] = PerformedStatus.IN_PROGRESS.value

    @rule(
        data=st.data(),
        known=st.integers(0, 5),
        final=st.sampled_from(
            [PerformedStatus.COMPLETED, PerformedStatus.DISCONTINUED, PerformedStatus.IN_PROGRESS]
        ),
        reason=st.sampled_from(REASONS),
        series=st.integers(0, 2),
        mangled=st.booleans(),
        implicit=st.booleans(),
    )
    def n_set(
        self,
        data: st.DataObject,
        known: int,
        final: PerformedStatus,
        reason: str,
        series: int,
        mangled: bool,
        implicit: bool,
    ) -> None:
        """To a known instance (five times in six) or an unknown one; valid or mangled."""
        uid = data.draw(st.sampled_from(sorted(self.expected))) if known else str(generate_uid())
        made = [PerformedSeries.made("SAG T2 TSE", images=2) for _ in range(series)]
        modification = mpps_final(made, ended=ENDED, status=final.value, reason=reason or None)
        if mangled:
            modification = mutate(modification, data)
        outcome = self.peer.n_set(uid, payload(modification, implicit), implicit=implicit)
        status = self.check(outcome)
        before = self.expected.get(uid)
        if before is None:
            assert status in (0x0112, 0x0106), hex(status)  # 0106: undecodable, found first
            return
        if PerformedStatus(before).is_final:
            assert status in (0x0110, 0x0106), hex(status)  # 0110 with A710: no longer updatable
            return
        if not mangled:
            wanted = 0x0000 if series or final is PerformedStatus.IN_PROGRESS else 0x0121
            assert status == wanted, hex(status)
        if status == 0x0000:
            sent = modification.get(0x00400252)  # by tag: the element, whatever its VR
            text = str(sent.value).strip() if sent is not None and sent.value else ""
            self.expected[uid] = text or before

    @invariant()
    def accepted_messages_are_kept(self) -> None:
        with self.runtime.sessions() as session:
            stored = dict(
                session.execute(
                    select(PerformedStep.sop_instance_uid, PerformedStep.status).where(
                        PerformedStep.sop_instance_uid.in_(list(self.expected))
                    )
                ).all()
            )
            completed = set(
                session.execute(
                    select(ScheduledStep.id).where(ScheduledStep.status == "COMPLETED")
                ).scalars()
            )
        assert stored == self.expected
        assert self.completed_steps <= completed, "a COMPLETED step was reopened"
        self.completed_steps = completed


def test_mangled_mpps_gets_dimse_statuses_and_loses_nothing(
    module_runtime: Runtime, dicom_port: int, booked: list[str]
) -> None:
    MppsConsoles.runtime = module_runtime
    MppsConsoles.port = dicom_port
    run_state_machine_as_test(
        MppsConsoles, settings=fuzz_settings(max_examples=25, stateful_step_count=10)
    )
    assert_still_serving(dicom_port)
