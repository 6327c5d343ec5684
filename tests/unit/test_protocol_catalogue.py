"""A bad protocol catalogue stops start-up before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mri_pipeline.config import Settings
from mri_pipeline.domain.protocols import CatalogueError
from mri_pipeline.runtime import build_runtime

CATALOGUE_FILE = Path(__file__).resolve().parents[2] / "worklist/protocols.yaml"


def test_a_bad_catalogue_stops_start_up_before_the_database_is_touched(tmp_path: Path) -> None:
    text = CATALOGUE_FILE.read_text(encoding="utf-8")
    assert "    scan_minutes: 20\n" in text
    bad = tmp_path / "protocols.yaml"
    bad.write_text(text.replace("    scan_minutes: 20\n", "    scan_minutes: -3\n", 1))
    settings = Settings(var_dir=tmp_path, protocols_file=bad)
    with pytest.raises(CatalogueError, match=r"protocols.yaml, line \d+: protocols\[0\]"):
        build_runtime(settings)
    assert not (tmp_path / "mri_pipeline.db").exists()
