"""The suite's order for xdist (tests/conftest.py, LONGEST_FILES): a stale name would silently
let the longest files start last again."""

from __future__ import annotations

import pytest

from tests.conftest import LONGEST_FILES, REPO


@pytest.mark.parametrize("name", LONGEST_FILES)
def test_each_longest_file_is_a_slow_test_file_of_the_suite(name: str) -> None:
    text = (REPO / name).read_text(encoding="utf-8")
    assert "pytest.mark.slow" in text or "pytest.mark.docker" in text


def test_the_longest_files_come_first(request: pytest.FixtureRequest) -> None:
    order = [item.nodeid.split("::")[0] for item in request.session.items]
    selected = [name for name in LONGEST_FILES if name in order]
    firsts = list(dict.fromkeys(order))[: len(selected)]
    assert firsts == selected
