"""Fixtures shared by the test suite.

Tests that read real incident files or R reference outputs find them in `../shared`
beside the checkout (or in $MONITOR_SHARED). Under CI (`CI` set) a missing folder is
a failure, never a skip; on a user's machine the tests skip with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MONITOR_SHARED", ROOT.parent / "shared"))


def _shared(sub: str) -> Path:
    path = SHARED / sub
    if not path.is_dir():
        message = f"{path} is missing: clone the shared data beside the project (../shared) or set MONITOR_SHARED"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`: real ACLED, UCDP and SIGACTS files."""
    return _shared("data")


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """`../shared/reference`: golden outputs of R surveillance 1.20.3."""
    return _shared("reference")


def reference_dir() -> Path:
    """The reference folder for table-driven parametrisation at collection time (may not exist)."""
    return SHARED / "reference"
