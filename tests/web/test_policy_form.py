"""The A-D severity policy as a form (levels x conditions, recovery targets in h/min): a valid save makes a
new version with the right JSON, errors are said in words next to their field, and Preview shows how the
last quarter's incidents would be classified, by the same classifier, figures computed by hand."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from incidents import selectors, services
from incidents.models import SeverityPolicy, Tier
from tests.factories import IncidentFactory, SystemFactory, UserFactory
from tests.web.conftest import field_errors, text_of

T0 = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)
URL = "/settings/severity-policy/"


@pytest.fixture(autouse=True)
def _at_t0():
    with time_machine.travel(T0, tick=False):
        yield


def policy_post(rules: dict[str, list[tuple[str, str] | tuple[str, str, bool]]], targets=None, **extra) -> dict:
    """The form's POST: per level its rows (measure, threshold[, remove]), then the targets (h, min)."""
    data = {}
    for level in "ABC":
        rows = rules.get(level, [])
        data |= {f"rules-{level}-TOTAL_FORMS": str(len(rows)), f"rules-{level}-INITIAL_FORMS": "0"}
        for index, row in enumerate(rows):
            data[f"rules-{level}-{index}-measure"], data[f"rules-{level}-{index}-at_least"] = row[0], row[1]
            if len(row) > 2 and row[2]:
                data[f"rules-{level}-{index}-DELETE"] = "on"
    targets = targets or {"A": (0, 30), "B": (1, 0), "C": (4, 0), "D": (24, 0)}
    for level, (hours, minutes) in targets.items():
        data[f"{level}_hours"], data[f"{level}_minutes"] = str(hours), str(minutes)
    return data | extra


def test_the_form_shows_the_current_version_row_by_row(administrator, world):
    html = administrator.get(URL).content.decode()
    text = text_of(html)
    assert "Current version: v1" in text
    assert "P0 impacted >= 60 min" in text
    # v1's A[0] is "P0 impacted >= 60 min": its row, the measure chosen and the threshold filled in.
    assert '<option value="tier_impact:P0" selected>P0 system impacted, minutes</option>' in html
    assert 'name="rules-A-0-at_least" id="id_rules-A-0-at_least" value="60"' in html
    assert 'name="rules-A-5-measure"' in html  # A's 5 conditions and one spare row
    assert 'name="A_hours" value="0"' in html and 'name="A_minutes" value="30"' in html
    assert "Advanced: the current version as JSON (read-only)" in text


def test_a_valid_save_makes_a_new_version_with_the_right_json(administrator, world):
    data = policy_post(
        {
            "A": [("tier_impact:P0", "45"), ("flag:data_or_security_breach", ""), ("funds_loss", "5", True)],
            "B": [("affected_transactions", "10,000"), ("", "")],  # an empty spare row adds nothing
            "C": [("tier_impact:P2", "60"), ("funds_loss", "10000.50")],
        },
        targets={"A": (0, 45), "B": (1, 30), "C": (4, 0), "D": (24, 0)},
        note="A at 45 min",
    )
    response = administrator.post(URL, data)
    assert response.status_code == 302
    latest = SeverityPolicy.objects.order_by("-version").first()
    assert latest.version == 2
    assert latest.rules == {
        "A": [
            {"kind": "tier_impact", "tier": "P0", "minutes": 45},
            {"kind": "flag", "flag": "data_or_security_breach"},
        ],
        "B": [{"kind": "affected_transactions", "at_least": 10000}],
        "C": [{"kind": "tier_impact", "tier": "P2", "minutes": 60}, {"kind": "funds_loss", "at_least": "10000.50"}],
    }
    assert latest.recovery_targets == {"A": 2700, "B": 5400, "C": 14400, "D": 86400}
    assert latest.note == "A at 45 min"


def test_every_error_is_said_in_words_next_to_its_field(administrator, world):
    data = policy_post(
        {
            "A": [("", "30")],
            "B": [("tier_impact:P1", "half an hour")],
            "C": [("affected_users", ""), ("funds_loss", "lots")],
        },
        targets={"A": (0, 0), "B": (1, 0), "C": (4, 0), "D": (24, 75)},
    )
    response = administrator.post(URL, data)
    assert response.status_code == 400
    assert field_errors(response, "id_rules-A-0-measure") == [
        "Choose what this condition measures, or clear the number."
    ]
    assert field_errors(response, "id_rules-B-0-at_least") == ["Write whole minutes, e.g. 30."]
    assert field_errors(response, "id_rules-C-0-at_least") == ["Give the threshold the incident must reach."]
    assert field_errors(response, "id_rules-C-1-at_least") == ["Write an amount of money, e.g. 100000."]
    text = text_of(response.content.decode())
    assert "A recovery target of at least one minute." in text
    assert "Ensure this value is less than or equal to 59." in text
    assert "Expecting value" not in text
    assert SeverityPolicy.objects.count() == 1


def test_errors_in_chinese(administrator, world):
    data = policy_post({"A": [("", "30")], "B": [("tier_impact:P1", "abc")]})
    response = administrator.post(URL, data, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert field_errors(response, "id_rules-A-0-measure") == ["请选择该条件的衡量项，或清空数字。"]
    assert field_errors(response, "id_rules-B-0-at_least") == ["请填写整数分钟，例如 30。"]


def preview_world():
    p0 = SystemFactory(code="cashier", tier=Tier.P0)
    p2 = SystemFactory(code="portal", tier=Tier.P2)
    # Under v1: P0 45 min is B; P2 20 min with 5,000 users is C; P2 70 min is C; a P2 10 min set to A by
    # hand stays A; one 100 days ago is outside the quarter.
    day = timedelta(days=1)
    one = IncidentFactory(
        title="Cashier down", systems=[p0], occurred_at=T0 - 3 * day, recovered_at=T0 - 3 * day + timedelta(minutes=45)
    )
    two = IncidentFactory(
        title="Portal errors",
        systems=[p2],
        occurred_at=T0 - 10 * day,
        recovered_at=T0 - 10 * day + timedelta(minutes=20),
        affected_users=5000,
    )
    three = IncidentFactory(
        title="Portal slow", systems=[p2], occurred_at=T0 - 20 * day, recovered_at=T0 - 20 * day + timedelta(minutes=70)
    )
    four = IncidentFactory(
        title="Portal blip", systems=[p2], occurred_at=T0 - 30 * day, recovered_at=T0 - 30 * day + timedelta(minutes=10)
    )
    services.severity_override_set(
        incident_id=four.pk, by=UserFactory(username="boss", role="admin"), level="A", reason="Regulator asked"
    )
    IncidentFactory(
        title="Old", systems=[p0], occurred_at=T0 - 100 * day, recovered_at=T0 - 100 * day + timedelta(minutes=45)
    )
    assert [i.level for i in (one, two, three)] == ["B", "C", "C"]
    return one, two, three, four


EDIT = {"A": [("tier_impact:P0", "45")], "B": [("affected_users", "5000")], "C": [("tier_impact:P2", "60")]}


def test_preview_shows_the_last_quarter_under_the_edit(administrator, world):
    one, two, three, four = preview_world()
    response = administrator.post(URL, policy_post(EDIT, preview="1"))
    assert response.status_code == 200
    text = text_of(response.content.decode())
    # 4 incidents in 90 days: 1 B -> A, 2 C -> B; 3 stays C; 4 keeps its manual A.
    assert "Of the 4 incidents of the last 90 days, 2 would change level." in text
    assert "Level A B C D Now 1 1 2 0 Under this edit 2 1 1 0" in text
    assert (
        f"#{one.pk} Cashier down B → A A: P0 system impacted 45 min (>= 45 min) "
        f"#{two.pk} Portal errors C → B B: 5,000 affected users (>= 5,000)"
    ) in text
    assert "Portal slow" not in text.split("Preview: the last quarter")[1].split("Make a new version")[0]
    assert SeverityPolicy.objects.count() == 1  # a preview saves nothing
    # The edit is kept in the form, ready to save.
    assert 'name="rules-B-0-at_least" id="id_rules-B-0-at_least" value="5000"' in response.content.decode()


def test_preview_in_chinese(administrator, world):
    preview_world()
    text = text_of(
        administrator.post(URL, policy_post(EDIT, preview="1"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    )
    assert "最近 90 天的 4 起事件中，有 2 起的级别会改变。" in text


def test_the_preview_selector_reads_in_two_queries(world, django_assert_num_queries):
    preview_world()
    rules = {"A": [{"kind": "tier_impact", "tier": "P0", "minutes": 45}]}
    with django_assert_num_queries(2):
        preview = selectors.severity_policy_preview(rules=rules, now=T0)
    assert preview["incidents"] == 4
    assert preview["counts"] == {"A": (1, 2), "B": (1, 0), "C": (2, 0), "D": (0, 2)}


def test_a_note_with_a_nul_character_is_refused_in_words(administrator, world):
    response = administrator.post(URL, policy_post({"A": [("tier_impact:P0", "45")]}, note="bad\x00note"))
    assert response.status_code == 400
    assert "Note: Null characters are not allowed." in text_of(response.content.decode())
    assert SeverityPolicy.objects.count() == 1


def test_the_api_previews_the_same_figures(world, admin_client_api):
    one, two, three, four = preview_world()
    rules = {
        "A": [{"kind": "tier_impact", "tier": "P0", "minutes": 45}],
        "B": [{"kind": "affected_users", "at_least": 5000}],
        "C": [{"kind": "tier_impact", "tier": "P2", "minutes": 60}],
    }
    answer = admin_client_api.post("/api/v1/severity-policies/preview/", {"rules": rules}, format="json")
    assert answer.status_code == 200
    assert answer.json() == {
        "incidents": 4,
        "days": 90,
        "counts": {
            "A": {"now": 1, "new": 2},
            "B": {"now": 1, "new": 1},
            "C": {"now": 2, "new": 1},
            "D": {"now": 0, "new": 0},
        },
        "changes": [
            {
                "incident": one.pk,
                "title": "Cashier down",
                "current": "B",
                "new": "A",
                "explanation": "A: P0 system impacted 45 min (>= 45 min)",
            },
            {
                "incident": two.pk,
                "title": "Portal errors",
                "current": "C",
                "new": "B",
                "explanation": "B: 5,000 affected users (>= 5,000)",
            },
        ],
    }
    wrong = admin_client_api.post(
        "/api/v1/severity-policies/preview/", {"rules": {"A": [{"kind": "tier_impact", "tier": "P9"}]}}, format="json"
    )
    assert wrong.status_code == 400
    assert "A[0]: tier must be one of P0, P1, P2, P3" in wrong.json()["rules"]
    assert SeverityPolicy.objects.count() == 1
