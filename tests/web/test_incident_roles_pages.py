"""The incident page's roles, "I'm on it" and the commander's updates, without a browser."""

import pytest

from incidents.models import Incident
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(world):
    return IncidentFactory(systems=[world["cashier"]])


def test_im_on_it_from_the_page_makes_the_engineer_owner_in_chinese_too(engineer, incident):
    page = engineer.get(f"/incidents/{incident.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert 'value="respond"' in page and "我来处理" in page
    response = engineer.post(f"/incidents/{incident.pk}/status/", {"action": "respond"})
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.owner == engineer.user and incident.responded_at is not None
    page = engineer.get(f"/incidents/{incident.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "已响应：接手处理" in page and "负责人: ∅ → web-engineer" in page


def test_only_the_commander_is_offered_and_may_post_an_update(engineer, incident):
    url = f"/incidents/{incident.pk}/"
    assert 'name="update"' not in engineer.get(url).content.decode()
    # A forged update from someone who is not the commander: refused in words, nothing written.
    refused = engineer.post(f"{url}notes/", {"text": "all good", "update": "on"})
    assert refused.status_code == 400
    assert "Only the incident&#x27;s commander" in refused.content.decode()
    assert not incident.timeline.filter(kind__in=["update", "note"]).exists()
    Incident.objects.filter(pk=incident.pk).update(commander=engineer.user)
    assert 'name="update"' in engineer.get(url).content.decode()
    assert engineer.post(f"{url}notes/", {"text": "switched to the backup channel", "update": "on"}).status_code == 302
    assert list(incident.timeline.filter(kind="update").values_list("text", flat=True)) == [
        "switched to the backup channel"
    ]


def test_roles_are_set_on_the_edit_page(engineer, manager, incident):
    edit = f"/incidents/{incident.pk}/edit/"
    page = engineer.get(edit).content.decode()
    assert 'name="commander"' in page and 'name="communications_lead"' in page
