from __future__ import annotations

from pathlib import Path

import pytest

from tests.copydetect.cd_helpers import CD


@pytest.fixture
def copydetect_dev() -> Path:
    if not CD.is_dir():
        pytest.skip(f"{CD} not found: the real copy-detection photos (../shared/data) are absent")
    return CD
