"""The alerts inbox: a live list (htmx refreshes it every 10 s), follow-up of one alert or many
(stability.services.alerts_follow_up), an incident from selected alerts, and this month's 5-minute
follow-up rate (stability.selectors.follow_up_rate)."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django_htmx.http import HttpResponseClientRedirect

from incidents import periods
from incidents.models import Incident
from stability import selectors as stability_selectors
from stability import services as stability_services
from stability.models import AlertOccurrence
from stability.services import FollowUp
from web import forms
from web import selectors as web_selectors
from web.views.base import PageView

PAGE_SIZE = 50
SHOW_CHOICES = ("waiting", "all")
BULK_ACTIONS = (FollowUp.ACKNOWLEDGE, FollowUp.COMMENT, FollowUp.RESOLVE, FollowUp.LINK)


def month_follow_up_rate(*, now=None) -> dict:
    """This month's follow-up rate over every counted alert, as the report computes it."""
    now = now or timezone.now()
    return stability_selectors.follow_up_rate(
        occurrences=AlertOccurrence.objects.all(), period=periods.this_month(now), now=now
    )


def _inbox_context(request, *, comment_form=None, errors=None) -> dict:
    show = request.GET.get("show") or request.POST.get("show") or "waiting"
    show = show if show in SHOW_CHOICES else "waiting"
    alerts = web_selectors.alerts_awaiting_follow_up() if show == "waiting" else web_selectors.alert_list()
    page = Paginator(alerts, PAGE_SIZE).get_page(request.GET.get("page"))
    return {
        "show": show,
        "page": page,
        "rate": month_follow_up_rate(),
        "window_seconds": settings.FOLLOW_UP_WINDOW_SECONDS,
        "comment_form": comment_form or forms.AlertCommentForm(),
        "errors": errors or [],
        "now": timezone.now(),
    }


class AlertInboxView(PageView):
    def get(self, request):
        template = "web/alerts/_inbox_live.html" if request.htmx else "web/alerts/inbox.html"
        return render(request, template, _inbox_context(request))


class AlertFollowUpView(PageView):
    """Acknowledge, comment on or resolve the chosen alerts, or open an incident from them."""

    def post(self, request):
        ids = [int(value) for value in request.POST.getlist("ids") if value.isdigit()]
        action = request.POST.get("action", "")
        if action != "create_incident":
            comment_form, errors = _follow_up(request, ids=ids, action=action)
            return _answer(request, ids=ids, comment_form=comment_form, errors=errors)
        try:
            incident = stability_services.incident_from_alerts(occurrence_ids=ids, by=request.user)
        except ValidationError as exc:
            return _answer(request, ids=ids, comment_form=None, errors=_messages(exc))
        messages.success(request, _("Incident #%(id)s opened from the alerts.") % {"id": incident.pk})
        return _redirect(request, "web:incident-detail", incident.pk)


def _messages(error: ValidationError) -> list[str]:
    return [message for messages_ in error.message_dict.values() for message in messages_]


def _follow_up(request, *, ids: list[int], action: str) -> tuple[forms.AlertCommentForm | None, list[str]]:
    """One of BULK_ACTIONS on the alerts through stability.services.alerts_follow_up. Returns the comment
    form to show again (with its error) and the errors; (None, []) when done."""
    comment_form = forms.AlertCommentForm(request.POST) if action == FollowUp.COMMENT else None
    try:
        if action not in BULK_ACTIONS:
            raise ValidationError({"action": [_("Choose what to do with the alerts.")]})
        stability_services.alerts_follow_up(
            occurrence_ids=ids,
            by=request.user,
            action=action,
            text=_comment_text(comment_form) if comment_form is not None else "",
            incident=_incident_to_link(request) if action == FollowUp.LINK else None,
        )
    except ValidationError as exc:
        if comment_form is not None and "text" in exc.message_dict and not comment_form.errors:
            comment_form.add_error("text", exc.message_dict["text"])
        return comment_form, _messages(exc)
    return None, []


def _comment_text(comment_form: forms.AlertCommentForm) -> str:
    if not comment_form.is_valid():
        raise ValidationError({"text": comment_form.errors["text"]})
    return comment_form.cleaned_data["text"]


def _incident_to_link(request) -> Incident | None:
    incident_id = request.POST.get("incident", "")
    return Incident.objects.filter(pk=incident_id).first() if incident_id.isdigit() else None


def _answer(request, *, ids: list[int], comment_form, errors: list[str]):
    """Back where the form was sent from (the inbox, its live part, or one alert's page), with the errors
    or a word that it is done."""
    if request.htmx:
        context = _inbox_context(request, comment_form=comment_form, errors=errors)
        return render(request, "web/alerts/_inbox_live.html", context, status=400 if errors else 200)
    alert_page = _alert_page_asked_for(request, ids)
    if errors and alert_page is not None:
        return AlertDetailView.render_page(request, alert_page, errors=errors, status=400)
    if errors:
        context = _inbox_context(request, comment_form=comment_form, errors=errors)
        return render(request, "web/alerts/inbox.html", context, status=400)
    messages.success(request, _("Done: %(count)s alerts.") % {"count": len(set(ids))})
    if alert_page is not None:
        return redirect("web:alert-detail", alert_page)
    return redirect("web:alert-inbox")


def _alert_page_asked_for(request, ids: list[int]) -> int | None:
    """The alert whose own page sent the form (it comes back there), else None (the inbox)."""
    if request.POST.get("from") == "alert" and len(ids) == 1:
        return ids[0]
    return None


class AlertDetailView(PageView):
    """One alert: what the source said, its countdown, what people did with it, and the follow-up."""

    @staticmethod
    def render_page(request, pk: int, *, errors=None, status=200):
        alert = get_object_or_404(web_selectors.alert_list(), pk=pk)
        context = {
            "alert": alert,
            "history": web_selectors.alert_history(alert=alert),
            "open_incidents": web_selectors.open_incidents(),
            "comment_form": forms.AlertCommentForm(),
            "errors": errors or [],
        }
        return render(request, "web/alerts/detail.html", context, status=status)

    def get(self, request, pk: int):
        return self.render_page(request, pk)


def _redirect(request, name: str, *args):
    """A redirect that htmx follows as a whole-page navigation."""
    if request.htmx:
        return HttpResponseClientRedirect(reverse(name, args=args))
    return redirect(name, *args)
