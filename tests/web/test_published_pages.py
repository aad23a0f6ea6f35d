"""Published reports as pages: publish from the report page, the published page drawn from its frozen
snapshot with its banner, "revised since publication" and its other revisions, the list, the frozen PDF;
who may do what; Chinese and English."""

import re
import shutil
import subprocess
from datetime import timedelta

import pytest

from incidents.models import System, Tier
from incidents.services import incident_update
from stability.models import PublishedReport
from tests.conftest import seed_severity_policy
from tests.factories import SystemFactory, UserFactory
from tests.stability.test_published import (
    EDITED,
    OPENED,
    PUBLISHED,
    at,
    make_november,
    recover_at,
    utc,
)
from tests.web.conftest import text_of
from tests.web.test_journeys import (
    CHROMIUM,
    PASSWORD,
    screenshots_dir,  # noqa: F401 (a fixture the tab needs)
    sign_in,
)
from tests.web.test_journeys import page as tab  # noqa: F401 (the journeys' browser tab, a fixture: `tab`)

pytestmark = pytest.mark.django_db


@pytest.fixture
def november(db):
    return make_november()


def publish_page(client, data: dict, moment=PUBLISHED):
    with at(moment):
        return client.post("/reports/publish/", data)


def visit(client, url: str, moment=OPENED, **headers):
    with at(moment):
        return client.get(url, **headers)


def test_the_report_page_offers_managers_to_publish_it(manager, november):
    html = visit(manager, "/reports/?period=2026-11&team=payments").content.decode()
    form = re.search(r'<form[^>]*action="/reports/publish/".*?</form>', html, re.S)
    assert form is not None
    assert 'name="csrfmiddlewaretoken"' in form.group()
    assert 'name="period" value="2026-11"' in form.group() and 'name="team" value="payments"' in form.group()


def test_engineers_are_not_offered_to_publish_and_may_not(engineer, november):
    november["payments"].members.add(engineer.user)
    html = visit(engineer, "/reports/?period=2026-11&team=payments").content.decode()
    assert 'action="/reports/publish/"' not in html
    # They read their teams' published reports: the list is linked.
    assert 'href="/reports/published/?period=2026-11&amp;team=payments"' in html
    assert publish_page(engineer, {"period": "2026-11", "team": "payments"}).status_code == 403
    assert not PublishedReport.objects.exists()


def test_publishing_shows_the_published_report_with_its_banner(manager, november):
    answer = publish_page(manager, {"period": "2026-11", "team": "payments"})
    published = PublishedReport.objects.get()
    assert answer.status_code == 302 and answer["Location"] == f"/reports/published/{published.pk}/"
    assert published.published_by == manager.user
    text = text_of(visit(manager, answer["Location"]).content.decode())
    assert "by Manager Person, revision 1." in text
    assert "Revised since publication" not in text
    # The frozen report through the live page's template: its incidents, its headline.
    assert "Slow cashier" in text and "支付失败" in text


def test_an_edit_shows_the_revision_box_with_the_records_and_a_new_revision(manager, november):
    publish_page(manager, {"period": "2026-11", "team": "payments"})
    first = PublishedReport.objects.get()
    recover_at(november["second"], utc(2026, 11, 10, 2, 40))
    html = visit(manager, f"/reports/published/{first.pk}/").content.decode()
    box = re.search(r'<section class="card published-revised".*?</section>', html, re.S).group()
    # MTTR 2,400 s (40 min) published, 3,000 s (50 min) now; the incident behind it linked.
    mttr = re.search(r"<tr>\s*<th scope=\"row\">MTTR</th>.*?</tr>", box, re.S).group()
    assert [text_of(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", mttr, re.S)[:2]] == ["40 min", "50 min"]
    assert f'href="/incidents/{november["second"].pk}/"' in mttr
    assert 'action="/reports/publish/"' in box
    # A new revision; the first still shows the figures it was sent with, and links to the second.
    answer = publish_page(manager, {"period": "2026-11", "team": "payments"}, EDITED + timedelta(minutes=5))
    second = PublishedReport.objects.get(revision=2)
    assert answer["Location"] == f"/reports/published/{second.pk}/"
    assert "Revised since publication" not in text_of(visit(manager, answer["Location"]).content.decode())
    old = visit(manager, f"/reports/published/{first.pk}/").content.decode()
    assert "A newer revision exists: revision 2." in text_of(old)
    assert f'href="/reports/published/{second.pk}/"' in old
    assert "40 min" in text_of(old)


def test_the_published_report_in_chinese(manager, november):
    publish_page(manager, {"period": "2026-11", "team": "payments"})
    published = PublishedReport.objects.get()
    recover_at(november["second"], utc(2026, 11, 10, 2, 40))
    text = text_of(
        visit(manager, f"/reports/published/{published.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    )
    assert "发布后已修订" in text
    assert "修订版 1" in text


def listed(client, url: str) -> str:
    """The text of the list's rows (not of the filter's choices)."""
    found = re.search(r"<tbody>(.*?)</tbody>", visit(client, url).content.decode(), re.S)
    return text_of(found.group(1)) if found else ""


def test_the_list_of_published_reports(manager, engineer, november):
    publish_page(manager, {"period": "2026-11", "team": "payments"})
    publish_page(manager, {"period": "2026-11"})
    publish_page(manager, {"period": "2026-10", "team": "accounts"})
    text = listed(manager, "/reports/published/")
    assert "All teams" in text and "Payments" in text and "Accounts" in text
    assert "2026-11 Payments 1 2026-12-10 09:00" in text  # period, scope, revision, published at (local)
    filtered = listed(manager, "/reports/published/?period=2026-10")
    assert "Accounts" in filtered and "Payments" not in filtered
    assert visit(manager, "/reports/published/?period=2026-13").status_code == 400
    # Engineers see their teams' only.
    november["payments"].members.add(engineer.user)
    mine = listed(engineer, "/reports/published/")
    assert "Payments" in mine and "All teams" not in mine and "Accounts" not in mine


def test_the_list_says_which_were_found_revised(manager, november):
    publish_page(manager, {"period": "2026-11", "team": "payments"})
    published = PublishedReport.objects.get()
    assert "Revised since publication" not in listed(manager, "/reports/published/")
    recover_at(november["second"], utc(2026, 11, 10, 2, 40))
    visit(manager, f"/reports/published/{published.pk}/")
    assert "Revised since publication" in listed(manager, "/reports/published/")


def test_engineers_read_only_their_teams_published_pages(manager, engineer, november):
    november["payments"].members.add(engineer.user)
    publish_page(manager, {"period": "2026-11", "team": "payments"})
    publish_page(manager, {"period": "2026-11", "team": "accounts"})
    own, other = PublishedReport.objects.order_by("team__slug").reverse()
    assert visit(engineer, f"/reports/published/{own.pk}/").status_code == 200
    assert visit(engineer, f"/reports/published/{other.pk}/").status_code == 403
    assert visit(engineer, f"/reports/published/{other.pk}/pdf/").status_code == 403


def test_bad_input_publishes_nothing(manager, november):
    assert publish_page(manager, {"period": "2026-13"}).status_code == 400
    assert publish_page(manager, {"period": "2026-11", "team": "nobody"}).status_code == 400
    assert publish_page(manager, {"period": "2027-01"}).status_code == 400
    assert not PublishedReport.objects.exists()
    assert visit(manager, "/reports/published/999999/").status_code == 404


def test_the_pdf_is_the_frozen_report(manager, november, tmp_path):
    publish_page(manager, {"period": "2026-11", "team": "payments"})
    published = PublishedReport.objects.get()
    recover_at(november["second"], utc(2026, 11, 10, 2, 40))
    answer = visit(manager, f"/reports/published/{published.pk}/pdf/")
    assert answer["Content-Type"] == "application/pdf"
    assert 'filename="stability-report-2026-11-payments-r1.pdf"' in answer["Content-Disposition"]
    pdf = tmp_path / "published.pdf"
    pdf.write_bytes(answer.content)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Slow cashier" in text
    assert "40 min" in text  # the MTTR sent, not the 50 min of now


def test_a_long_table_shows_its_first_rows_and_every_row_from_the_frozen_report(manager, november):
    # Payments: the cashier and 26 more systems, 27 rows of availability, more than the page's 25.
    for n in range(26):
        SystemFactory(code=f"sys-{n:02d}", name=f"System {n:02d}", tier=Tier.P2, team=november["payments"])
    publish_page(manager, {"period": "2026-11", "team": "payments"})
    published = PublishedReport.objects.get()
    System.objects.filter(code="sys-25").update(name="Renamed later")
    html = visit(manager, f"/reports/published/{published.pk}/").content.decode()
    assert f'href="/reports/published/{published.pk}/?appendix=availability"' in html
    every = visit(manager, f"/reports/published/{published.pk}/?appendix=availability").content.decode()
    # Ordered by tier and code: the last two are only on the appendix's own page, with the names as sent.
    assert "System 24" in text_of(every) and "System 25" in text_of(every)
    assert "Renamed later" not in every
    assert visit(manager, f"/reports/published/{published.pk}/?appendix=nothing").status_code == 404


# --- in a browser -----------------------------------------------------------------------------------


@pytest.fixture
def published_world(transactional_db):
    """As `november`, in committed rows (the browser's server reads them): November 2026 is past."""
    seed_severity_policy()
    return make_november()


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"needs Chromium at {CHROMIUM}")
def test_a_manager_publishes_last_months_report_and_sees_it_revised_after_an_edit(request, published_world):
    browser = request.getfixturevalue("tab")
    UserFactory(username="luna", role="manager", first_name="Luna", last_name="Li", password=PASSWORD)
    sign_in(browser, "luna")
    browser.goto(browser.base + "/reports/?period=2026-11&team=payments")
    browser.get_by_role("button", name="Publish", exact=True).click()
    browser.wait_for_url(re.compile(r"/reports/published/\d+/$"))
    banner = browser.locator(".published-banner")
    assert "by Luna Li, revision 1." in banner.inner_text()
    assert browser.locator(".published-revised").count() == 0

    # B recovered 20 minutes later than recorded: MTTR 40 -> 50 min.
    second = published_world["second"]
    incident_update(
        incident_id=second.pk, by=None, expected_version=None, changes={"recovered_at": utc(2026, 11, 10, 2, 40)}
    )
    browser.reload()
    box = browser.locator(".published-revised")
    box.get_by_role("heading", name="Revised since publication").wait_for()
    mttr = box.locator("tr", has=browser.get_by_role("rowheader", name="MTTR", exact=True))
    assert [cell.strip() for cell in mttr.locator("td").all_inner_texts()[:2]] == ["40 min", "50 min"]
    assert mttr.get_by_role("link", name=f"Incident #{second.pk}").get_attribute("href") == f"/incidents/{second.pk}/"

    box.get_by_role("button", name="Publish a new revision").click()
    browser.wait_for_url(re.compile(r"/reports/published/\d+/$"))
    assert "revision 2." in browser.locator(".published-banner").inner_text()
    assert browser.locator(".published-revised").count() == 0
    # The first revision is still there, as it was sent.
    browser.get_by_role("link", name=re.compile(r"^Revision 1 ")).click()
    browser.locator(".published-revised").wait_for()
    assert "A newer revision exists: revision 2." in browser.locator(".published-banner").inner_text()
    assert browser.csp_violations == []
