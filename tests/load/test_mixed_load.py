"""Mixed load (issue 8): 20 consoles, 4 scanners and 50 API clients at once against one
site (``bench/load.py``'s driver, for a short time): no request fails, every interface
works, and every examination the scanners complete gets recorded, QC'd and routed.

No assertion on time: the machines running the suite are shared. The per-interface table
(throughput, p50/p95/p99) is printed (``pytest -s`` shows it). On PostgreSQL when
MRI_PIPELINE_TEST_DATABASE_URL is set (the production database), else on SQLite: one
run, not both, to keep the suite short.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from load import Shape, report, run_load, site_overrides
from mri_pipeline.runtime import build_runtime
from tests.conftest import POSTGRES_URL, make_settings, postgres_schema
from tests.integration.orthanc_tools import NEEDS_ORTHANC

pytestmark = NEEDS_ORTHANC

# Four items a console finds (the bench: 25): quicker booking and queries, a shorter test.
SHAPE = Shape(seconds=20, grace=60, items_today=4)


@contextmanager
def database(tmp_path: Path) -> Iterator[str]:
    if POSTGRES_URL:
        with postgres_schema() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'load.db'}"


def test_consoles_scanners_and_readers_at_once_fail_no_request_and_every_exam_is_routed(
    tmp_path: Path, checked: Callable[[str], None]
) -> None:
    with database(tmp_path) as url:
        settings = make_settings(url, tmp_path / "var", **site_overrides(tmp_path, SHAPE))
        runtime = build_runtime(settings)
        try:
            result = run_load(runtime, SHAPE, tmp_path)
        finally:
            runtime.close()
    checked("load: " + "\n".join(report(result)))

    tallies = result.tallies
    for tally in tallies.all():
        assert tally.failed == 0, f"{tally.interface}: {tally.reasons}"
    # Every client did work: each console queried, each scanner examined, each reader read.
    assert tallies.consoles.requests >= SHAPE.consoles
    assert tallies.lists.requests >= SHAPE.api_clients
    per_scanner = Counter(exam.station for exam in result.examinations)
    assert sorted(per_scanner) == [f"MRI{n}" for n in range(1, SHAPE.scanners + 1)]
    exams = len(result.examinations)
    assert tallies.create.requests == tallies.set_.requests == exams
    assert tallies.images.requests == exams * result.images_per_exam
    # The pipeline kept up: each examination recorded, ready, QC'd and routed.
    check = result.pipeline
    assert check.complete, check.behind
    assert check.recorded == check.ready == check.routed == exams
    assert result.names_in_log == 0, "patient names in the site's or Orthanc's log"
    assert result.log_problem_count == 0, result.log_problems
