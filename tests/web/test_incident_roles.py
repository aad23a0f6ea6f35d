"""Browser journey (issue 15, parts 2-3): an engineer takes an incident ("I'm on it") on its page, in
English and Chinese, on a desktop and a phone (390 px); the timeline says it in the reader's language.
A screenshot of each run is kept in ARTEFACT_DIR (default var/artefacts/journeys/)."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from incidents.models import Incident
from tests.factories import IncidentFactory, SystemFactory
from tests.web.test_journeys import page, people, pytestmark, screenshots_dir, sign_in  # noqa: F401

WORDS = {
    "en": {"button": "I'm on it", "responded": "Responded: on it", "logged": "Logged:"},
    "zh-hans": {"button": "我来处理", "responded": "已响应：接手处理", "logged": "已登记:"},
}


def artefacts() -> Path:
    folder = Path(os.environ.get("ARTEFACT_DIR", settings.BASE_DIR / "var" / "artefacts" / "journeys"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("language", ["en", "zh-hans"])
@pytest.mark.parametrize(
    "page", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}], indirect=True, ids=["desktop", "phone"]
)
def test_an_engineer_takes_an_incident_and_reads_the_timeline_in_their_language(page, people, language):  # noqa: F811
    incident = IncidentFactory(
        title="Cashier timeouts",
        systems=[SystemFactory(code="cashier-2", tier="P0")],
        occurred_at=timezone.now() - timedelta(minutes=30),
        detected_at=timezone.now() - timedelta(minutes=25),
    )
    sign_in(page, "lei")
    if language != "en":
        page.locator("form.language-switch button[value=zh-hans]").click()
        page.wait_for_load_state()
    page.goto(f"{page.base}/incidents/{incident.pk}/")
    words = WORDS[language]
    page.get_by_role("button", name=words["button"]).click()
    page.wait_for_load_state()
    timeline = page.locator("ol.timeline")
    assert words["responded"] in timeline.inner_text()
    assert words["logged"] in timeline.inner_text()
    if language != "en":
        assert "Responded" not in timeline.inner_text() and "Logged" not in timeline.inner_text()
    width = page.viewport_size["width"]
    # Nothing wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(artefacts() / f"incident_taken_{language}_{width}.png"), full_page=True)
    taken = Incident.objects.get(pk=incident.pk)
    assert taken.owner.username == "lei"
    assert taken.responded_at is not None
