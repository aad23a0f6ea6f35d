"""The README's "Guarantees" and docs/reminders.md back each promise with a named test: every name
they cite must be a test of the suite, so that a renamed or deleted test cannot leave a promise bare."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _defined_tests() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.update(re.findall(r"^\s*def (test_\w+)", path.read_text(), re.M))
    return names


def _cited(text: str) -> set[str]:
    return set(re.findall(r"`(test_\w+)`", text))


def test_every_test_the_guarantees_name_exists():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Guarantees") : readme.index("## Configuration")]
    cited = _cited(section) | _cited((ROOT / "docs" / "reminders.md").read_text())
    assert len(cited) >= 30
    assert cited - _defined_tests() == set()
