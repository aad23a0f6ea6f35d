"""Service level pages (docs/service-levels.md): the figures of a period per indicator, a system's
indicators, an indicator's days and its test query, and the settings pages where administrators manage
the Prometheus sources and the indicators. Figures come from service_levels.selectors, writes from
service_levels.services, as the API's; who reads which team's figures is the report's rule
(stability.report_access)."""

from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.permissions import CONFIGURE, READ_TEAM_REPORTS, user_can
from incidents import periods
from incidents.models import System, Team
from service_levels import selectors, services
from service_levels.models import Indicator, PrometheusSource
from stability import report_access
from web.forms import apply_service_errors
from web.views.base import PageView

# How far back a manager's home page looks for days that may hide an unlogged incident.
HOME_UNLOGGED_DAYS = 30


class PeriodForm(forms.Form):
    period = forms.CharField(
        label=gettext_lazy("Period"),
        max_length=30,
        required=False,
        help_text=gettext_lazy(
            "A month (2026-11), a week (2026-W48), a quarter (2026-Q4) or a year; empty: this month."
        ),
    )
    team = forms.ModelChoiceField(
        label=gettext_lazy("Team"),
        queryset=Team.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label=gettext_lazy("All teams"),
    )

    def clean_period(self) -> periods.Period:
        try:
            return periods.requested(self.cleaned_data["period"])
        except ValidationError as error:
            raise ValidationError(error.messages) from None


def _period_of(request) -> tuple[forms.Form, periods.Period | None]:
    form = PeriodForm(request.GET)
    if not form.is_valid():
        return form, None
    return form, form.cleaned_data["period"]


def _require(user, *, team: Team | None = None, system: System | None = None) -> None:
    if not report_access.may_read_report(user, team=team, system=system):
        raise PermissionDenied(report_access.refusal(user))


class ServiceLevelPage(PageView):
    read_capability = READ_TEAM_REPORTS
    write_capability = CONFIGURE


class ServiceLevelsView(ServiceLevelPage):
    """Every indicator of the scope: the period's value against its objective, the error budget left, the
    days missing and the year to date, and the days that may hide an unlogged incident."""

    def get(self, request):
        form, period = _period_of(request)
        context = {"form": form, "period": period}
        if period is None:
            return render(request, "web/service_levels/index.html", context, status=400)
        team = form.cleaned_data["team"]
        if team is None:
            team = report_access.default_report_team(request.user)
        _require(request.user, team=team)
        now = timezone.now()
        context |= {
            "team": team,
            "figures": selectors.service_level_figures(period, team=team, now=now),
            "unlogged": with_log_links(selectors.possible_unlogged_incidents(period, team=team, now=now)),
            "can_configure": user_can(request.user, CONFIGURE),
        }
        return render(request, "web/service_levels/index.html", context)


class SystemServiceLevelsView(ServiceLevelPage):
    """A system's page of service levels: each of its indicators over the period and the year to date, its
    days, and the days that may hide an unlogged incident."""

    def get(self, request, code: str):
        system = get_object_or_404(System.objects.select_related("team"), code=code)
        _require(request.user, system=system)
        form, period = _period_of(request)
        context = {"form": form, "period": period, "system": system}
        if period is None:
            return render(request, "web/service_levels/system.html", context, status=400)
        now = timezone.now()
        figures = selectors.service_level_figures(period, system=system, now=now)
        indicators = {i.pk: i for i in selectors.indicators_in_scope(system=system)}
        context |= {
            "figures": figures,
            "rows": [
                {"figures": row, "days": selectors.daily_values(indicators[row["indicator"]], period, now=now)}
                for row in figures
            ],
            "unlogged": with_log_links(selectors.possible_unlogged_incidents(period, system=system, now=now)),
        }
        return render(request, "web/service_levels/system.html", context)


class IndicatorView(ServiceLevelPage):
    """An indicator: what it measures, its figures and days over the period; administrators run its test
    query (the last 24 hours, asked of Prometheus now, nothing stored)."""

    template = "web/service_levels/indicator.html"

    def _indicator(self, request, pk: int) -> Indicator:
        indicator = get_object_or_404(Indicator.objects.select_related("system__team", "source"), pk=pk)
        _require(request.user, system=indicator.system)
        return indicator

    def _context(self, request, indicator: Indicator) -> tuple[dict, bool]:
        form, period = _period_of(request)
        context = {"form": form, "period": period, "indicator": indicator, "system": indicator.system}
        if period is None:
            return context, False
        now = timezone.now()
        figures = selectors.service_level_figures(period, system=indicator.system, now=now)
        context |= {
            "figures_list": [row for row in figures if row["indicator"] == indicator.pk],
            "days": selectors.daily_values(indicator, period, now=now),
            "can_configure": user_can(request.user, CONFIGURE),
        }
        return context, True

    def get(self, request, pk: int):
        context, ok = self._context(request, self._indicator(request, pk))
        return render(request, self.template, context, status=200 if ok else 400)

    def post(self, request, pk: int):
        """The test query: an htmx request gets the result alone, a plain form post the page with it."""
        indicator = self._indicator(request, pk)
        trial = services.measure_last_24_hours(indicator)
        result = {"trial": trial, "value": selectors.measurement_percent(trial.measurement), "indicator": indicator}
        if request.htmx:
            return render(request, "web/service_levels/_test_result.html", result)
        context, ok = self._context(request, indicator)
        return render(request, self.template, context | result, status=200 if ok else 400)


def unlogged_for_manager(user, *, now=None) -> list[dict]:
    """The home page's "possible unlogged incident" list: the last HOME_UNLOGGED_DAYS finished days of the
    teams this person manages (Team.managers), each with the link that opens the log form prefilled."""
    if not user.is_authenticated:
        return []
    now = now or timezone.now()
    teams = Team.objects.filter(managers=user)
    if not teams.exists():
        return []
    today = services.local_today(now)
    period = periods.date_range(today - timedelta(days=HOME_UNLOGGED_DAYS), today - timedelta(days=1))
    return with_log_links(selectors.possible_unlogged_incidents(period, teams=teams, now=now))


def with_log_links(rows: list[dict]) -> list[dict]:
    return [{**row, "log_url": log_incident_url(row)} for row in rows]


def log_incident_url(row: dict) -> str:
    """The after-the-fact log form, prefilled: the system, the day's start as when it occurred, a title."""
    start, _end = services.day_bounds(row["day"])
    title = _("%(indicator)s below objective on %(day)s (%(value)s %%)") % {
        "indicator": row["indicator_name"],
        "day": row["day"].isoformat(),
        "value": row["value"].quantize(Decimal("0.001"), rounding=ROUND_DOWN),
    }
    query = {"systems": row["system"], "occurred_at": start.isoformat(), "title": title}
    return reverse("web:incident-log-past") + "?" + urlencode(query)


# --- settings ----------------------------------------------------------------------------------------


class SourceForm(forms.ModelForm):
    # Write-only: never rendered back; empty on an edit keeps the stored one (services.source_update).
    bearer_token = forms.CharField(
        label=gettext_lazy("Bearer token"), required=False, widget=forms.PasswordInput(render_value=False)
    )
    password = forms.CharField(
        label=gettext_lazy("Password"), required=False, widget=forms.PasswordInput(render_value=False)
    )

    class Meta:
        model = PrometheusSource
        fields = services.SOURCE_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].empty_label = _("Whole installation")
        if self.instance.pk:
            for name, is_set in (("bearer_token", self.instance.bearer_token), ("password", self.instance.password)):
                self.fields[name].help_text = (
                    _("One is set; leave this empty to keep it.") if is_set else _("None is set.")
                )

    def _post_clean(self):
        # The service validates (services.check_source and the model's rules) and saves.
        pass


class IndicatorForm(forms.ModelForm):
    class Meta:
        model = Indicator
        fields = services.INDICATOR_FIELDS
        widgets = {name: forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}) for name in services.QUERY_FIELDS}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["system"].queryset = System.objects.select_related("team").order_by("tier", "code")

    def _post_clean(self):
        pass


SETTINGS = {
    "sources": {
        "form": SourceForm,
        "model": PrometheusSource,
        "title": gettext_lazy("Prometheus source"),
        "create": lambda values: services.source_create(**values),
        "update": lambda pk, values: services.source_update(source_id=pk, changes=values),
    },
    "indicators": {
        "form": IndicatorForm,
        "model": Indicator,
        "title": gettext_lazy("Service level indicator"),
        "create": lambda values: services.indicator_create(**values),
        "update": lambda pk, values: services.indicator_update(indicator_id=pk, changes=values),
    },
}


class SettingsPage(PageView):
    read_capability = CONFIGURE
    write_capability = CONFIGURE


class ServiceLevelSettingsView(SettingsPage):
    def get(self, request):
        context = {
            "sources": PrometheusSource.objects.select_related("team"),
            "indicators": Indicator.objects.select_related("system__team", "source"),
        }
        return render(request, "web/service_levels/settings.html", context)


class ServiceLevelRecordView(SettingsPage):
    """Add (pk None) or change a source or an indicator through its service; its errors go next to the
    fields and nothing is saved. A source no indicator uses can be deleted."""

    template = "web/service_levels/record.html"

    def _object(self, kind: str, pk: int | None):
        return None if pk is None else get_object_or_404(SETTINGS[kind]["model"], pk=pk)

    def _render(self, request, kind: str, form, obj, status=200):
        context = {"kind": kind, "title": SETTINGS[kind]["title"], "form": form, "object": obj}
        return render(request, self.template, context, status=status)

    def get(self, request, kind: str, pk: int | None = None):
        obj = self._object(kind, pk)
        initial = {}
        if obj is None and kind == "indicators" and request.GET.get("system"):
            initial["system"] = System.objects.filter(code=request.GET["system"]).first()
        return self._render(request, kind, SETTINGS[kind]["form"](instance=obj, initial=initial), obj)

    def post(self, request, kind: str, pk: int | None = None):
        obj = self._object(kind, pk)
        if obj is not None and kind == "sources" and "delete" in request.POST:
            try:
                services.source_delete(source_id=obj.pk)
            except ValidationError as error:
                messages.error(request, " ".join(error.messages))
                return redirect("web:service-level-record", kind, obj.pk)
            messages.success(request, _("Deleted."))
            return redirect("web:service-level-settings")
        form = SETTINGS[kind]["form"](request.POST, instance=obj)
        if form.is_valid():
            values = {name: form.cleaned_data[name] for name in form._meta.fields}
            try:
                saved = (
                    SETTINGS[kind]["update"](obj.pk, values) if obj is not None else SETTINGS[kind]["create"](values)
                )
            except ValidationError as error:
                apply_service_errors(form, error)
            else:
                messages.success(request, _("Saved."))
                if kind == "indicators":
                    return redirect("web:service-level-indicator", saved.pk)
                return redirect("web:service-level-settings")
        return self._render(request, kind, form, obj, status=400)
