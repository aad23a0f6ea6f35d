"""One guard for both life cycles (incidents.services.StateMachine): incidents and action items."""

import pytest
from django.core.exceptions import ValidationError

from incidents.models import ActionItem, Status
from incidents.services import ItemTransition, Transition


def test_allowed_lists_the_steps_a_status_may_take():
    assert [action for action, _label in Transition.allowed(Status.OPEN)] == ["respond", "recover", "resolve"]
    assert [action for action, _label in Transition.allowed(Status.CLOSED)] == ["reopen"]
    assert [action for action, _label in ItemTransition.allowed(ActionItem.Status.DONE)] == [
        "verify",
        "waive",
        "reopen",
    ]


@pytest.mark.parametrize(
    ("machine", "action", "status", "message"),
    [
        (Transition, "fly", Status.OPEN, "Unknown action; use one of: respond, recover, resolve, close, reopen."),
        (Transition, "close", Status.OPEN, "Cannot close an incident whose status is Open."),
        (ItemTransition, "verify", ActionItem.Status.OPEN, "Cannot verify an action item whose status is Open."),
    ],
)
def test_check_refuses_on_action(machine, action, status, message):
    with pytest.raises(ValidationError) as refused:
        machine.check(action, status=status)
    assert refused.value.message_dict == {"action": [message]}
