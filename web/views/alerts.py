"""The alerts inbox: a live list (htmx refreshes it every 10 s), follow-up of one alert or many
(stability.services.alerts_follow_up), an incident from selected alerts, and this month's 5-minute
follow-up rate (stability.selectors.follow_up_rate). The missed alerts page lists the alerts behind the
rate's `missed` (stability.selectors.follow_up_missed) of a period and scope, as the report counts them."""

import math
from dataclasses import dataclass
from datetime import timedelta

import django_filters
from django import forms as django_forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_htmx.http import HttpResponseClientRedirect

from accounts.permissions import READ_TEAM_REPORTS, report_scope_refusal
from incidents import periods
from incidents.models import Incident, System, Team
from stability import report_access
from stability import selectors as stability_selectors
from stability import services as stability_services
from stability.models import AlertOccurrence
from stability.selectors import InboxState
from stability.services import FollowUp
from web import forms
from web import selectors as web_selectors
from web.views.base import PageView

BULK_ACTIONS = (FollowUp.ACKNOWLEDGE, FollowUp.COMMENT, FollowUp.RESOLVE, FollowUp.LINK)


def month_follow_up_rate(*, now=None) -> dict:
    """This month's follow-up rate over every counted alert, as the report computes it: its settled days
    from the day counts, so that the inbox, read every 10 s, does not read the month's alerts (hundreds of
    thousands by its end) at each refresh. The counts only, no delay percentiles."""
    now = now or timezone.now()
    period = periods.this_month(now)
    summary = stability_selectors.follow_up_summary(period=period, now=now, percentiles=False)
    return {"period": period.label, "overall": summary["overall"]}


class InboxFilter(django_filters.FilterSet):
    """The inbox's filters, kept in the URL (and remembered per person, stability.models.InboxPreference)."""

    state = django_filters.ChoiceFilter(
        label=gettext_lazy("Show"),
        choices=[
            (InboxState.ACT_NOW, gettext_lazy("Act now")),
            (InboxState.MISSED, gettext_lazy("Missed")),
            (InboxState.RESOLVED, gettext_lazy("Resolved by the source")),
            (InboxState.ALL, gettext_lazy("All of the last day")),
        ],
        method="filter_state",
        empty_label=None,
    )
    team = django_filters.ModelChoiceFilter(
        label=gettext_lazy("Team"),
        queryset=Team.objects.order_by("name"),
        to_field_name="slug",
        empty_label=gettext_lazy("All teams"),
    )
    system = django_filters.ModelChoiceFilter(
        label=gettext_lazy("System"),
        queryset=System.objects.order_by("code"),
        to_field_name="code",
        empty_label=gettext_lazy("All systems"),
    )
    severity = django_filters.CharFilter(label=gettext_lazy("Severity"), field_name="severity")
    rule = django_filters.CharFilter(label=gettext_lazy("Alert rule"), field_name="alertname")

    class Meta:
        model = AlertOccurrence
        fields = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Offered from the last day's alerts (web/alerts/inbox.html's datalists); any text is accepted.
        self.form.fields["rule"].widget.attrs["list"] = "inbox-rules"
        self.form.fields["severity"].widget.attrs["list"] = "inbox-severities"
        # A system is typed by its code, offered from a datalist: a select of hundreds of systems was most of
        # the page's rendering time, at every 10-second refresh of every engineer on duty.
        self.form.fields["system"].widget = django_forms.TextInput(
            attrs={"list": "inbox-systems", "autocomplete": "off", "spellcheck": "false"}
        )

    def filter_state(self, queryset, name, value):
        return queryset  # the selectors split the states (stability.selectors.InboxState)

    @property
    def chosen_state(self) -> str:
        value = self.form.cleaned_data.get("state") if self.is_valid() else None
        return value or InboxState.ACT_NOW


def _params(request) -> QueryDict:
    """The inbox's filters of a GET (the URL), or of a POST (its `query` field: the URL it was sent from)."""
    if request.method == "POST":
        return QueryDict(request.POST.get("query", ""), mutable=True)
    params = request.GET.copy()
    params.pop("page", None)
    return params


def _inbox_context(request, *, comment_form=None, errors=None, notice: str = "") -> dict:
    now = timezone.now()
    params = _params(request)
    filterset = InboxFilter(params, queryset=AlertOccurrence.objects.all())
    valid = filterset.is_valid()
    occurrences = filterset.qs if valid else AlertOccurrence.objects.none()
    state = filterset.chosen_state
    if "state" not in params:
        params["state"] = state
    since = stability_selectors.inbox_since(now)
    counts = stability_selectors.inbox_counts(now=now, occurrences=occurrences)
    page = request.GET.get("page") or request.POST.get("page") or ""
    inbox = stability_selectors.inbox_groups(
        now=now, state=state, occurrences=occurrences, page=int(page) if page.isdigit() else 1
    )
    tabs = []
    for value, label in InboxFilter.base_filters["state"].extra["choices"]:
        tab_params = params.copy()
        tab_params["state"] = value
        tabs.append({"state": value, "label": label, "count": counts[value], "query": tab_params.urlencode()})
    return {
        "tabs": tabs,
        "filtered": any(params.get(name) for name in ("team", "system", "severity", "rule")),
        "filter": filterset,
        "state": state,
        "query": params.urlencode(),
        "counts": counts,
        "inbox": inbox,
        "groups": inbox.groups,
        # the 10-second refresh reads the page it shows
        "live_query": params.urlencode() + (f"&page={inbox.page}" if inbox.page > 1 else ""),
        "choices": web_selectors.inbox_choices(since=since),
        "silence_minutes": stability_services.SILENCE_MINUTES,
        "rate": month_follow_up_rate(now=now),
        "window_seconds": settings.FOLLOW_UP_WINDOW_SECONDS,
        "inbox_hours": stability_selectors.INBOX_HOURS,
        "comment_form": comment_form or forms.AlertCommentForm(),
        "errors": errors or [],
        "notice": notice,
        "now": now,
    }


class AlertInboxView(PageView):
    """The inbox: the alerts nobody followed up of the last day, grouped by rule and system, filtered.
    Opened without filters, it shows the person's last ones; `?clear` forgets them."""

    def get(self, request):
        if request.htmx:
            return render(request, "web/alerts/_inbox_live.html", _inbox_context(request))
        if "clear" in request.GET:
            stability_services.inbox_preference_save(user=request.user, query="")
            return redirect("web:alert-inbox")
        params = _params(request)
        if not params:
            remembered = stability_selectors.inbox_preference(user=request.user)
            if remembered:
                return redirect(f"{reverse('web:alert-inbox')}?{remembered}")
        context = _inbox_context(request)
        if context["filter"].is_valid():
            stability_services.inbox_preference_save(user=request.user, query=params.urlencode())
        return render(request, "web/alerts/inbox.html", context, status=200 if context["filter"].is_valid() else 400)


def _back_to_inbox(request, *, notice: str = "", errors=None):
    """The inbox's live part (htmx), or the inbox with the same filters."""
    if request.htmx:
        context = _inbox_context(request, notice=notice, errors=errors)
        return render(request, "web/alerts/_inbox_live.html", context, status=400 if errors else 200)
    if errors:
        return render(request, "web/alerts/inbox.html", _inbox_context(request, errors=errors), status=400)
    messages.success(request, notice)
    query = request.POST.get("query", "")
    return redirect(f"{reverse('web:alert-inbox')}?{query}" if query else reverse("web:alert-inbox"))


class AlertGroupAcknowledgeView(PageView):
    """Acknowledge every alert of a group (rule and system) nobody followed up yet, at once."""

    def post(self, request):
        system_id, _sep, alertname = request.POST.get("group", "").partition(":")
        system = System.objects.filter(pk=system_id).first() if system_id.isdigit() else None
        if system_id and system is None:
            return _back_to_inbox(request, errors=[_("This system does not exist.")])
        acknowledged = stability_services.alert_group_acknowledge(
            by=request.user,
            alertname=alertname,
            system=system,
            since=stability_selectors.inbox_since(timezone.now()),
        )
        if acknowledged:
            notice = _("Acknowledged: %(count)s alerts of %(group)s.") % {
                "count": len(acknowledged),
                "group": alertname or "–",
            }
        else:
            notice = _("Nothing to acknowledge: somebody already followed these alerts up.")
        return _back_to_inbox(request, notice=notice)


class AlertSilenceView(PageView):
    """Silence the system of an alert for some minutes: a maintenance window from now. Sent from the inbox
    (a group's newest alert, `minutes-<id>`) or from the alert's own page (`minutes`, `from=alert`)."""

    def post(self, request):
        alert_id = request.POST.get("alert", "")
        alert = get_object_or_404(
            AlertOccurrence.objects.select_related("system"), pk=int(alert_id) if alert_id.isdigit() else 0
        )
        minutes = request.POST.get(f"minutes-{alert.pk}") or request.POST.get("minutes", "")
        try:
            if alert.system is None:
                raise ValidationError({"system": [_("This alert names no known system to silence.")]})
            if not minutes.isdigit():
                raise ValidationError({"minutes": [_("Choose for how many minutes.")]})
            window = stability_services.system_silence(
                by=request.user,
                system=alert.system,
                minutes=int(minutes),
                reason=request.POST.get("reason", "").strip() or f"{alert.alertname or alert.fingerprint} #{alert.pk}",
            )
        except ValidationError as exc:
            if request.POST.get("from") == "alert":
                return AlertDetailView.render_page(request, alert.pk, errors=_messages(exc), status=400)
            return _back_to_inbox(request, errors=_messages(exc))
        notice = _("%(system)s silenced until %(until)s: its new alerts are not counted.") % {
            "system": alert.system.code,
            "until": formats.date_format(timezone.localtime(window.ends_at), "H:i"),
        }
        if request.POST.get("from") == "alert":
            messages.success(request, notice)
            return redirect("web:alert-detail", alert.pk)
        return _back_to_inbox(request, notice=notice)


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
    query = request.POST.get("query", "")
    return redirect(f"{reverse('web:alert-inbox')}?{query}" if query else reverse("web:alert-inbox"))


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
            "silence_minutes": stability_services.SILENCE_MINUTES,
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


# --- Missed alerts (the alerts behind the follow-up rate's `missed`) ----------------------------------

MISSED_PAGE_SIZE = 50


class MissedAlertsForm(django_forms.Form):
    """The period and scope of the missed alerts, as the report names them (period, team, system), and
    the alert rule. Every team and system validates, so one the reader may not read is a 403, not a
    400; the choices shown are the reader's."""

    period = django_forms.CharField(
        label=gettext_lazy("Period"),
        max_length=30,
        required=False,
        help_text=gettext_lazy(
            "A month (2026-11), a week (2026-W48), a quarter (2026-Q4) or a year; empty: last month."
        ),
    )
    team = django_forms.ModelChoiceField(
        label=gettext_lazy("Team"),
        queryset=Team.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label=gettext_lazy("All teams"),
    )
    system = django_forms.ModelChoiceField(
        label=gettext_lazy("System"),
        queryset=System.objects.order_by("name"),
        to_field_name="code",
        required=False,
        empty_label=gettext_lazy("All systems"),
    )
    rule = django_forms.CharField(
        label=gettext_lazy("Alert rule"),
        max_length=200,
        required=False,
        help_text=gettext_lazy("The alert's name, exactly (e.g. CashierLatency)."),
    )

    def clean_period(self) -> periods.Period:
        try:
            return periods.requested(self.cleaned_data["period"], default=periods.last_complete_month)
        except ValidationError as error:
            raise ValidationError(error.messages) from None

    def show_only(self, teams: QuerySet[Team] | None) -> None:
        """List only these teams and their systems (None: every one) in the choices."""
        if teams is not None:
            self.fields["team"].queryset = teams
            self.fields["system"].queryset = System.objects.filter(team__in=teams).order_by("name")


@dataclass(frozen=True)
class MissedRow:
    """One missed alert as the page shows it: how late past the window (None: never followed up)."""

    alert: AlertOccurrence
    late: timedelta | None


@dataclass(frozen=True)
class MissedPage:
    rows: list[MissedRow]
    next_after: int | None  # the cursor of the next page (the last row's id), None on the last page
    previous_before: int | None  # the cursor of the previous page (the first row's id), None on the first


def missed_scope(user, *, team: Team | None, system: System | None, rule: str) -> Q:
    """The condition (on team, system, alert name: fields the day counts share) of the missed alerts
    this person asked for and may read: the team or system asked for, else every team for managers
    and administrators and their teams for engineers. PermissionDenied (with the teams they may ask
    for) outside what they read."""
    teams = report_access.report_teams(user)
    if team is not None or system is not None:
        if not report_access.may_read_report(user, team=team, system=system):
            raise PermissionDenied(report_scope_refusal(user))
    elif teams is not None and not teams.exists():
        raise PermissionDenied(report_scope_refusal(user))
    scope = Q()
    if team is not None:
        scope &= Q(team=team)
    if system is not None:
        scope &= Q(system=system)
    if team is None and system is None and teams is not None:
        scope &= Q(team__in=teams.values("pk"))
    if rule:
        scope &= Q(alertname=rule)
    return scope


def _late(alert: AlertOccurrence, window: timedelta) -> timedelta | None:
    """How long past the window it was followed up, whole seconds up (a missed one is never 0 s late)."""
    if alert.followed_up_at is None:
        return None
    return timedelta(seconds=math.ceil((alert.followed_up_at - alert.received_at - window).total_seconds()))


def _rows(missed: QuerySet[AlertOccurrence], chosen: Q, ordering: tuple[str, str]) -> list[AlertOccurrence]:
    """Up to MISSED_PAGE_SIZE + 1 of `missed` matching `chosen`, in `ordering`. The page's ids are chosen
    first, from the occurrences alone (an index range of received_at), and only they are joined to their
    team, system and follower, in the same statement."""
    page_ids = missed.filter(chosen).order_by(*ordering).values("pk")[: MISSED_PAGE_SIZE + 1]
    return list(
        missed.model.objects.filter(pk__in=page_ids)
        .select_related("team", "system", "followed_up_by")
        .order_by(*ordering)
    )


def missed_page(missed: QuerySet[AlertOccurrence], *, after: int | None, before: int | None) -> MissedPage:
    """A page of `missed` (ordered by received_at, id) by keyset: the rows after the alert `after`, or
    before the alert `before`, or the first. It reads only the rows of the page (and one more), however
    many there are: no OFFSET, no count. Measured on generate_history's defaults (1M alerts; its busiest
    month 84,740 alerts, 13,117 missed): 25-65 ms a page, the first, the middle or the last alike; the
    paging OR alone (without its received_at bound) walked the month up to the cursor (400 ms)."""
    window = timedelta(seconds=settings.FOLLOW_UP_WINDOW_SECONDS)
    cursor_id = after if after is not None else before
    cursor = None
    if cursor_id is not None:
        cursor = AlertOccurrence.objects.filter(pk=cursor_id).values_list("received_at", flat=True).first()
    forward = ("received_at", "pk")
    if cursor is not None and after is not None:
        # The bound on received_at alone is the index range; the OR breaks ties by id.
        later = Q(received_at__gte=cursor) & (Q(received_at__gt=cursor) | Q(received_at=cursor, pk__gt=after))
        chosen = _rows(missed, later, forward)
        more, rows = len(chosen) > MISSED_PAGE_SIZE, chosen[:MISSED_PAGE_SIZE]
        has_next, has_previous = more, True
    elif cursor is not None:
        earlier = Q(received_at__lte=cursor) & (Q(received_at__lt=cursor) | Q(received_at=cursor, pk__lt=before))
        chosen = _rows(missed, earlier, ("-received_at", "-pk"))
        more, rows = len(chosen) > MISSED_PAGE_SIZE, chosen[:MISSED_PAGE_SIZE][::-1]
        has_next, has_previous = True, more
    else:
        chosen = _rows(missed, Q(), forward)
        rows, has_next, has_previous = chosen[:MISSED_PAGE_SIZE], len(chosen) > MISSED_PAGE_SIZE, False
    return MissedPage(
        rows=[MissedRow(alert=alert, late=_late(alert, window)) for alert in rows],
        next_after=rows[-1].pk if rows and has_next else None,
        previous_before=rows[0].pk if rows and has_previous else None,
    )


def _cursor(request, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdigit() and len(value) < 19 else None


class MissedAlertsView(PageView):
    """The alerts the follow-up rate counts as missed (followed up late or never) in a period (default:
    last month), filtered by team, system and rule; engineers see their teams', managers and
    administrators every team's. Their number is the report's `missed` for the same period and scope."""

    read_capability = READ_TEAM_REPORTS

    def get(self, request):
        form = MissedAlertsForm(request.GET)
        valid = form.is_valid()
        form.show_only(report_access.report_teams(request.user))
        context = {"form": form, "page": None, "window_seconds": settings.FOLLOW_UP_WINDOW_SECONDS}
        if not valid:
            return render(request, "web/alerts/missed.html", context, status=400)
        data = form.cleaned_data
        scope = missed_scope(request.user, team=data["team"], system=data["system"], rule=data["rule"])
        now = timezone.now()
        period = data["period"]
        counts = stability_selectors.follow_up_trend(scope=scope, periods=[period], now=now)[0]
        missed = stability_selectors.follow_up_missed(
            occurrences=AlertOccurrence.objects.filter(scope), period=period, now=now
        )
        context |= {
            "period": period,
            "counts": counts,
            "page": missed_page(missed, after=_cursor(request, "after"), before=_cursor(request, "before")),
            "report_query": _report_query(period=period, team=data["team"], system=data["system"]),
        }
        return render(request, "web/alerts/missed.html", context)


def _report_query(*, period: periods.Period, team: Team | None, system: System | None) -> str:
    """The query of the report of the same period and scope (the page links back to it)."""
    values = {"period": period.label}
    if team is not None:
        values["team"] = team.slug
    if system is not None:
        values["system"] = system.code
    return urlencode(values)
