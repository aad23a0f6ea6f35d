"""The repository stands alone: nothing in it reads or names a folder beside the checkout."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = "../" + "shared"  # spelled in two parts so that this file does not name it itself


def test_no_file_of_the_repository_refers_to_a_folder_beside_it():
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True
        )
    except FileNotFoundError:
        pytest.skip("git is not installed")
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    offenders = []
    for name in listed.stdout.splitlines():
        path = ROOT / name
        if not path.is_file() or path.suffix in {".mo", ".png", ".pdf", ".ico", ".woff2"}:
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        offenders += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if OUTSIDE in line]
    assert offenders == []


def test_the_severity_policy_is_documented_in_the_repository():
    text = (ROOT / "docs" / "severity.md").read_text()
    # The default policy's thresholds, as the data migration seeds them.
    for condition in ("P0 impacted >= 60 min", "funds loss >= 100,000", "affected transactions >= 1,000"):
        assert condition in text
