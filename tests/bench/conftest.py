"""Every test here is a benchmark's smoke test: marked ``bench``, run apart from the main suite.

pyproject's ``addopts`` deselects the marker from a plain ``pytest``; ``make
bench-smoke`` (a step of ``make test``) installs the bench extra and runs
``pytest -m bench tests/bench``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.bench)
