"""Settings pages for administrators: teams, systems, integrations (the token shown once),
notification channels (the secret never shown), reminder policies and the A-D severity policy.
Every record is written by its service, as the API and the admin write it (incidents.services for
teams and systems, stability.channels for channels, stability.services for the rest); each form edits
the service's list of fields and puts the service's errors next to them."""

import json

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.permissions import CONFIGURE
from incidents import selectors as incident_selectors
from incidents import services as incident_services
from incidents import severity
from incidents.models import Level, SeverityPolicy, System, Team, review_sections_form_field
from stability import channels as stability_channels
from stability import delivery as stability_delivery
from stability import reminders as stability_reminders
from stability import services as stability_services
from stability.models import Integration, NotificationChannel, ReminderPolicy, subscribable_events
from web.forms import PolicyForm, apply_service_errors, people
from web.views.base import PageView


def _service_values(form: forms.ModelForm) -> dict:
    """What a section's form sends its service: the fields of the service's list."""
    return {name: form.cleaned_data[name] for name in form._meta.fields}


class ConfigurationPage(PageView):
    read_capability = CONFIGURE
    write_capability = CONFIGURE


class TeamForm(forms.ModelForm):
    managers = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Managers"), queryset=people(), required=False, widget=forms.CheckboxSelectMultiple
    )
    members = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Members"), queryset=people(), required=False, widget=forms.CheckboxSelectMultiple
    )
    review_required_sections = review_sections_form_field(
        label=gettext_lazy("Required review sections"),
        help_text=gettext_lazy("Written before an incident of this team may close (复盘)."),
    )

    class Meta:
        model = Team
        fields = incident_services.TEAM_FIELDS


class SystemForm(forms.ModelForm):
    class Meta:
        model = System
        fields = incident_services.SYSTEM_FIELDS
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class IntegrationForm(forms.ModelForm):
    system_labels = forms.CharField(
        label=gettext_lazy("System labels"),
        initial="system, service",
        help_text=gettext_lazy("Labels naming the system, tried in order, separated by commas."),
    )

    class Meta:
        model = Integration
        fields = stability_services.INTEGRATION_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["kind"].disabled = True  # another kind is another integration
            self.initial["system_labels"] = ", ".join(self.instance.system_labels)

    def clean_system_labels(self):
        labels = [label.strip() for label in self.cleaned_data["system_labels"].split(",") if label.strip()]
        if not labels:
            raise ValidationError(_("Name at least one label."))
        return labels


class ChannelForm(forms.ModelForm):
    # Write-only: never rendered back; left empty on an edit, the stored secret stays.
    secret = forms.CharField(
        label=gettext_lazy("Secret"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=gettext_lazy(
            "DingTalk or Feishu signing secret, or the webhook's HMAC key. Empty on an edit: unchanged."
        ),
    )

    events = forms.MultipleChoiceField(
        label=gettext_lazy("Events"),
        choices=subscribable_events,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy(
            "None ticked: all of a person's notifications; a team's alert notices, escalations and the weekly "
            "and monthly reports. A manager whose own channels all leave a report out does not get it."
        ),
    )

    class Meta:
        model = NotificationChannel
        fields = stability_channels.CHANNEL_FIELDS
        widgets = {"target": forms.TextInput()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["secret"].help_text = (
                _("A secret is set; leave this empty to keep it.")
                if self.instance.secret
                else _("No secret is set; leave this empty for none.")
            )

    def _post_clean(self):
        # No model validation here: stability.channels.validate_channel makes it, with the channel's
        # own rules (a team or a person, a target that suits the kind), and save_through_service puts
        # its errors next to the fields. Checked here too, a broken rule would show as "constraint
        # violated" and hide the rest.
        pass

    def service_values(self) -> dict:
        values = _service_values(self)
        if self.instance.pk and not values["secret"]:
            values.pop("secret")  # an edit leaves the stored secret as it is
        return values


class ReminderPolicyForm(forms.ModelForm):
    days_before = forms.CharField(
        label=gettext_lazy("Days before due"),
        initial="3, 1",
        help_text=gettext_lazy("Whole days, separated by commas, e.g. 3, 1."),
    )

    class Meta:
        model = ReminderPolicy
        fields = stability_services.REMINDER_POLICY_FIELDS
        widgets = {
            "quiet_hours_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "quiet_hours_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["days_before"] = ", ".join(str(d) for d in self.instance.days_before)

    # The service's own checks, here too so that every error of the form shows at once.
    def clean_days_before(self):
        try:
            days = [int(part) for part in self.cleaned_data["days_before"].split(",") if part.strip()]
        except ValueError:
            raise ValidationError(_("Write whole numbers of days, separated by commas.")) from None
        return stability_services.reminder_days_before(days)

    def clean_escalate_every_days(self):
        return stability_services.reminder_escalate_every_days(self.cleaned_data["escalate_every_days"])


# What each model's pages show and edit.
SECTIONS = {
    "teams": {
        "model": Team,
        "form": TeamForm,
        "lookup": "slug",
        "title": gettext_lazy("Teams"),
        "columns": ("name", "slug"),
        "queryset": lambda: Team.objects.prefetch_related("managers", "members"),
        "create": lambda values, by: incident_services.team_create(**values),
        "update": lambda pk, values: incident_services.team_update(team_id=pk, changes=values),
    },
    "systems": {
        "model": System,
        "form": SystemForm,
        "lookup": "code",
        "title": gettext_lazy("Systems"),
        "columns": ("code", "name", "tier", "team", "availability_target"),
        "queryset": lambda: System.objects.select_related("team"),
        "create": lambda values, by: incident_services.system_create(**values),
        "update": lambda pk, values: incident_services.system_update(system_id=pk, changes=values),
    },
    "integrations": {
        "model": Integration,
        "form": IntegrationForm,
        "lookup": "pk",
        "title": gettext_lazy("Integrations"),
        "columns": ("name", "kind", "enabled", "is_test", "token_prefix", "default_team", "default_system"),
        "queryset": lambda: Integration.objects.select_related("default_team", "default_system"),
        # Created by SectionView.post itself: the answer shows the new token once.
        "update": lambda pk, values: stability_services.integration_update(integration_id=pk, changes=values),
    },
    "channels": {
        "model": NotificationChannel,
        "form": ChannelForm,
        "lookup": "pk",
        "title": gettext_lazy("Notification channels"),
        "columns": (
            "name",
            "kind",
            "team",
            "user",
            "language",
            "enabled",
            # Write-only: whether there is one, never what it is.
            (gettext_lazy("Secret"), lambda channel: _("set") if channel.secret else _("not set")),
        ),
        "queryset": lambda: NotificationChannel.objects.select_related("team", "user"),
        "create": lambda values, by: stability_channels.channel_create(**values),
        "update": lambda pk, values: stability_channels.channel_update(channel_id=pk, changes=values),
    },
    "reminder-policies": {
        "model": ReminderPolicy,
        "form": ReminderPolicyForm,
        "lookup": "pk",
        "title": gettext_lazy("Reminder policies"),
        "columns": (
            "team",
            "days_before",
            "escalate_after_days",
            "escalate_every_days",
            "quiet_hours_start",
            "quiet_hours_end",
        ),
        "queryset": lambda: ReminderPolicy.objects.select_related("team"),
        "create": lambda values, by: stability_services.reminder_policy_create(**values),
        "update": lambda pk, values: stability_services.reminder_policy_update(policy_id=pk, changes=values),
    },
}


# Sections whose records may be deleted (the others are disabled instead: alerts and incidents name them).
DELETABLE = {
    "channels": lambda pk: stability_channels.channel_delete(channel_id=pk),
    "reminder-policies": lambda pk: stability_services.reminder_policy_delete(policy_id=pk),
}


def _save(name: str, form, *, by) -> bool:
    """Create or change a section's record through its service; the service's errors go next to the
    fields, and nothing is saved."""
    section = SECTIONS[name]
    values = form.service_values() if hasattr(form, "service_values") else _service_values(form)
    try:
        if form.instance.pk:
            section["update"](form.instance.pk, values)
        else:
            section["create"](values, by)
    except ValidationError as exc:
        apply_service_errors(form, exc)
        return False
    return True


class ConfigurationIndexView(ConfigurationPage):
    def get(self, request):
        return render(request, "web/configuration/index.html", {"sections": SECTIONS})


def _cell(obj, column):
    if isinstance(column, tuple):  # (heading, function of the object)
        return column[1](obj)
    display = getattr(obj, f"get_{column}_display", None)
    return display() if display else getattr(obj, column)


def _table(section: dict) -> tuple[list[str], list[dict]]:
    """Column heads and rows of a section's list: a column is a field's name or (heading, function)."""
    model = section["model"]
    rows = [
        {"object": obj, "key": getattr(obj, section["lookup"]), "cells": [_cell(obj, c) for c in section["columns"]]}
        for obj in section["queryset"]()
    ]
    headers = [c[0] if isinstance(c, tuple) else model._meta.get_field(c).verbose_name for c in section["columns"]]
    return headers, rows


def _effective_reminder_policies() -> list[dict]:
    """Each team with the schedule its items follow (stability.reminders, as the sweep reads it): its own
    policy, or the settings' defaults."""
    default = stability_reminders.default_policy()
    own = stability_reminders.team_policies()
    keys = dict(ReminderPolicy.objects.values_list("team_id", "pk"))
    return [
        {"team": team, "policy": policy, "days_before": ", ".join(map(str, reversed(policy.days_before))), "key": key}
        for team in Team.objects.order_by("name")
        for policy, key in [(own.get(team.pk, default), keys.get(team.pk))]
    ]


def integration_setup(request, integration: Integration, token: str | None = None) -> dict:
    """What the alerting system needs: the webhook's full address on this server (as the browser
    reached it), and for Alertmanager a ready alertmanager.yml receiver; the token itself only on
    the answer that shows it, a placeholder otherwise."""
    url = request.build_absolute_uri(reverse(f"webhook-{integration.kind}"))
    credentials = token or "<TOKEN>"
    snippet = ""
    if integration.kind == Integration.Kind.ALERTMANAGER:
        # Plain text (not marked safe): the page escapes it where it shows it.
        snippet = "".join(
            render_to_string(
                "web/configuration/alertmanager.yml", {"url": url, "credentials": credentials, "name": integration.name}
            )
        )
    return {"webhook_url": url, "webhook_snippet": snippet, "webhook_credentials": credentials}


class SectionView(ConfigurationPage):
    """The list of one section with a form to add one; an integration's token is shown once here."""

    template = "web/configuration/section.html"

    def _render(self, request, name: str, form, *, status=200, token=None, created=None):
        section = SECTIONS[name]
        headers, rows = _table(section)
        context = {"name": name, "section": section, "headers": headers, "rows": rows, "form": form}
        context |= {"token": token, "created": created}
        if created is not None:
            context |= integration_setup(request, created, token)
        if name == "reminder-policies":
            context["teams"] = _effective_reminder_policies()
            context["reminder_defaults"] = {
                "days_before": ", ".join(str(d) for d in settings.REMINDER_DAYS_BEFORE),
                "escalate_after_days": settings.REMINDER_ESCALATE_AFTER_DAYS,
                "escalate_every_days": settings.REMINDER_ESCALATE_EVERY_DAYS,
                "quiet_hours": f"{settings.REMINDER_QUIET_HOURS_START}-{settings.REMINDER_QUIET_HOURS_END}",
            }
        return render(request, self.template, context, status=status)

    def get(self, request, name: str):
        initial = {}
        if name == "reminder-policies" and request.GET.get("team", "").isdigit():
            initial["team"] = request.GET["team"]  # "set its own policy" from the team's row
        return self._render(request, name, SECTIONS[name]["form"](initial=initial))

    def post(self, request, name: str):
        form = SECTIONS[name]["form"](request.POST)
        if not form.is_valid():
            return self._render(request, name, form, status=400)
        if name == "integrations":
            values = {k: v for k, v in form.cleaned_data.items() if v is not None}
            integration, token = stability_services.integration_create(by=request.user, **values)
            # The token is shown on this answer and never again (only a digest is stored).
            return self._render(request, name, IntegrationForm(), token=token, created=integration)
        if not _save(name, form, by=request.user):
            return self._render(request, name, form, status=400)
        messages.success(request, _("Saved."))
        return redirect("web:configuration-section", name)


class ItemView(ConfigurationPage):
    template = "web/configuration/item.html"

    def _object(self, name: str, key: str):
        section = SECTIONS[name]
        return get_object_or_404(section["queryset"](), **{section["lookup"]: key})

    def get(self, request, name: str, key: str):
        obj = self._object(name, key)
        context = {"name": name, "section": SECTIONS[name], "object": obj, "form": SECTIONS[name]["form"](instance=obj)}
        if name == "integrations":
            context |= integration_setup(request, obj)
        return render(request, self.template, context)

    def post(self, request, name: str, key: str):
        obj = self._object(name, key)
        if name == "integrations" and "rotate" in request.POST:
            token = stability_services.integration_rotate_token(integration=obj)
            form = IntegrationForm(instance=obj)
            context = {"name": name, "section": SECTIONS[name], "object": obj, "form": form}
            context |= {"token": token, "created": obj} | integration_setup(request, obj, token)
            return render(request, self.template, context)
        if name == "channels" and "toggle" in request.POST:
            return self._toggle(request, obj)
        if name == "channels" and "test" in request.POST:
            return self._test(request, obj)
        if "delete" in request.POST and name in DELETABLE:
            DELETABLE[name](obj.pk)
            messages.success(request, _("Deleted."))
            return redirect("web:configuration-section", name)
        form = SECTIONS[name]["form"](request.POST, instance=obj)
        if not form.is_valid() or not _save(name, form, by=request.user):
            context = {"name": name, "section": SECTIONS[name], "object": obj, "form": form}
            return render(request, self.template, context, status=400)
        messages.success(request, _("Saved."))
        return redirect("web:configuration-section", name)

    def _test(self, request, channel: NotificationChannel):
        """Send a test message now and say how it went, in words (stability.delivery.channel_test_send)."""
        try:
            outcome = stability_delivery.channel_test_send(channel_id=channel.pk, by=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            if outcome.delivered:
                messages.success(request, outcome.reason)
            else:
                messages.error(
                    request, _("The test message was not delivered: %(reason)s") % {"reason": outcome.reason}
                )
        return redirect("web:configuration-item", "channels", channel.pk)

    def _toggle(self, request, channel: NotificationChannel):
        """Disable or enable a channel through stability.channels, as the API's update does."""
        try:
            channel = stability_channels.channel_update(channel_id=channel.pk, changes={"enabled": not channel.enabled})
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("web:configuration-item", "channels", channel.pk)
        if channel.enabled:
            messages.success(request, _("Channel %(name)s enabled.") % {"name": channel.name})
        else:
            messages.success(request, _("Channel %(name)s disabled.") % {"name": channel.name})
        return redirect("web:configuration-section", "channels")


class SeverityPolicyView(ConfigurationPage):
    """The current A-D policy in words, and a form (levels x conditions, recovery targets) whose Preview
    shows how the last quarter's incidents would be classified under the edit, and whose Save makes a new
    version (incidents.services.severity_policy_create)."""

    template = "web/configuration/policy.html"

    def _render(self, request, form: PolicyForm, *, preview=None, status=200):
        policy = incident_selectors.current_severity_policy()
        in_words = {
            level: [severity.describe_condition(c) for c in policy.rules.get(level, [])]
            for level in severity.CLASSIFIED_LEVELS
        }
        versions = SeverityPolicy.objects.select_related("created_by")[:10]
        context = {
            "policy": policy,
            "in_words": in_words,
            "form": form,
            "levels": [(level, form.levels[level]) for level in severity.CLASSIFIED_LEVELS],
            "targets": [
                (level, form.recovery[f"{level}_hours"], form.recovery[f"{level}_minutes"]) for level in Level.values
            ],
            "preview": preview,
            "versions": versions,
            "policy_json": json.dumps(
                {"rules": policy.rules, "recovery_targets": policy.recovery_targets}, indent=2, ensure_ascii=False
            ),
        }
        return render(request, self.template, context, status=status)

    def get(self, request):
        return self._render(request, PolicyForm(policy=incident_selectors.current_severity_policy()))

    def post(self, request):
        form = PolicyForm(request.POST)
        if not form.is_valid():
            return self._render(request, form, status=400)
        if "preview" in request.POST:
            try:
                severity.validate_policy(form.rules(), form.targets())
            except ValidationError as exc:
                form.add_service_errors(exc)
                return self._render(request, form, status=400)
            preview = incident_selectors.severity_policy_preview(rules=form.rules(), now=timezone.now())
            return self._render(request, form, preview=preview)
        try:
            policy = incident_services.severity_policy_create(
                by=request.user, rules=form.rules(), recovery_targets=form.targets(), note=form.note_value
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
            return self._render(request, form, status=400)
        messages.success(
            request, _("Version %(version)s classifies new incidents from now on.") % {"version": policy.version}
        )
        return redirect("web:configuration-policy")
