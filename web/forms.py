"""Forms of the pages. They validate what a person typed and show errors next to each field; the
writes go through the services (incidents.services, stability.services), never form.save()."""

from decimal import Decimal, InvalidOperation

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from incidents import severity
from incidents.models import ActionItem, Drill, Incident, Level, SeverityPolicy, System, Team, Tier
from incidents.services import ItemTransition, Transition

# Facts the A-D policy reads (incidents.severity); the live suggestion posts them.
IMPACT_FIELDS = (
    "affected_users",
    "affected_transactions",
    "funds_loss",
    "data_or_security_breach",
    "regulatory_reportable",
)


class MomentInput(forms.DateTimeInput):
    """A date and time to the second, typed in the reader's zone (the form field converts)."""

    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs={"step": 1, **(attrs or {})}, format="%Y-%m-%dT%H:%M:%S")


class SystemPicker(forms.CheckboxSelectMultiple):
    """The systems as checkboxes grouped by team, with a text filter over them (web/static/web/app.js
    shows it; without JavaScript the groups alone are there). Chosen systems stay shown whatever the
    filter; each option carries its code, name and team for the filter to match."""

    template_name = "web/widgets/system_picker.html"

    def optgroups(self, name, value, attrs=None):
        teams: dict[str, list] = {}
        for choice_value, label in self.choices:
            instance = getattr(choice_value, "instance", None)
            team = instance.team.name if instance is not None else ""
            teams.setdefault(team, []).append((choice_value, label))
        flat, self.choices = self.choices, [(team, teams[team]) for team in sorted(teams)]
        try:
            return super().optgroups(name, value, attrs)
        finally:
            self.choices = flat

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        instance = getattr(value, "instance", None)
        if instance is not None:
            option["search"] = f"{instance.code} {instance.name} {instance.team.name}".casefold()
        return option


class SystemChoiceField(forms.ModelMultipleChoiceField):
    widget = SystemPicker

    def label_from_instance(self, obj: System) -> str:
        return f"{obj.name} · {obj.tier}"


class PersonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        full_name = obj.get_full_name()
        return f"{full_name} ({obj.username})" if full_name else obj.username


def people() -> "forms.QuerySet[User]":
    return User.objects.filter(is_active=True).order_by("username")


def apply_service_errors(form: forms.Form, error: ValidationError, *, aliases: dict[str, str] | None = None) -> None:
    """Put a service's ValidationError next to the fields it names (the rest above the form)."""
    aliases = aliases or {}
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, messages in error.message_dict.items():
        name = aliases.get(name, name)
        target = name if name in form.fields and not form.fields[name].disabled else None
        for message in messages:
            form.add_error(target, message)


def _moment_widgets(*names: str) -> dict[str, forms.Widget]:
    return {name: MomentInput() for name in names}


class IncidentLogForm(forms.ModelForm):
    """Logging an incident while it burns: what is needed first, impact facts optional."""

    quick_fields = ("title", "systems", "occurred_at", "detected_at", "detection_source")

    systems = SystemChoiceField(
        label=_("Systems impacted"),
        queryset=System.objects.select_related("team").order_by("tier", "name"),
    )

    class Meta:
        model = Incident
        fields = ["title", "systems", "occurred_at", "detected_at", "detection_source", *IMPACT_FIELDS]
        widgets = {
            **_moment_widgets("occurred_at", "detected_at"),
            "detection_source": forms.RadioSelect,
            "title": forms.TextInput(attrs={"autofocus": True, "autocomplete": "off"}),
        }

    def __init__(self, *args, now=None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            now = timezone.now().replace(microsecond=0) if now is None else now
            self.fields["occurred_at"].initial = now
            self.fields["detected_at"].initial = now
        self.fields["detection_source"].choices = [
            c for c in self.fields["detection_source"].choices if c[0]
        ]  # radio buttons need no empty choice

    def service_values(self) -> dict:
        """The arguments of incidents.services.incident_create."""
        values = {name: value for name, value in self.cleaned_data.items() if value is not None}
        values["systems"] = list(self.cleaned_data["systems"])
        return values


class IncidentPastForm(IncidentLogForm):
    """An incident entered after the fact: every timestamp and fact in one form."""

    team = forms.ModelChoiceField(
        label=_("Team"),
        queryset=Team.objects.all(),
        required=False,
        help_text=_("Empty: the team of the first system."),
    )
    owner = PersonChoiceField(label=_("Owner"), queryset=people(), required=False)

    class Meta(IncidentLogForm.Meta):
        fields = [
            "title",
            "systems",
            "team",
            "owner",
            "detection_source",
            "occurred_at",
            "detected_at",
            "responded_at",
            "recovered_at",
            "resolved_at",
            *IMPACT_FIELDS,
            "availability_impact",
            "cause_category",
            "summary",
            "cause",
            "handling",
        ]
        widgets = {
            **IncidentLogForm.Meta.widgets,
            **_moment_widgets("responded_at", "recovered_at", "resolved_at"),
            "summary": forms.Textarea(attrs={"rows": 3}),
            "cause": forms.Textarea(attrs={"rows": 3}),
            "handling": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["occurred_at"].initial = None
        self.fields["detected_at"].initial = None


class IncidentEditForm(forms.ModelForm):
    """Correcting an incident's facts. Only changed fields are sent to incident_update, with the
    version the reader saw (a concurrent change is refused, not overwritten)."""

    expected_version = forms.IntegerField(widget=forms.HiddenInput)
    systems = IncidentLogForm.base_fields["systems"]
    team = forms.ModelChoiceField(label=_("Team"), queryset=Team.objects.all())
    owner = PersonChoiceField(label=_("Owner"), queryset=people(), required=False)
    commander = PersonChoiceField(label=_("Incident commander"), queryset=people(), required=False)
    communications_lead = PersonChoiceField(label=_("Communications lead"), queryset=people(), required=False)

    class Meta:
        model = Incident
        fields = IncidentPastForm.Meta.fields
        widgets = IncidentPastForm.Meta.widgets

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expected_version"].initial = self.instance.version
        self.fields["detection_source"].choices = [c for c in self.fields["detection_source"].choices if c[0]]
        for name in ("recovered_at", "resolved_at"):
            if getattr(self.instance, name) is None:
                # Set by a status change (mark recovered / resolved), corrected here once set.
                self.fields[name].disabled = True
                self.fields[name].help_text = _("Set by changing the status; correct it here once set.")

    def changes(self) -> dict:
        """The fields the reader changed, as incident_update takes them."""
        changed = {}
        for name in self.changed_data:
            if name == "expected_version":
                continue
            value = self.cleaned_data[name]
            changed[name] = list(value) if name == "systems" else value
        return changed


class TimelineNoteForm(forms.Form):
    text = forms.CharField(
        label=_("What happened"),
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("E.g. switched traffic to the backup channel."),
    )
    at = forms.DateTimeField(label=_("At"), required=False, widget=MomentInput, help_text=_("Empty: now."))
    update = forms.BooleanField(
        label=_("Post as the commander's update"), required=False, help_text=_("Commander, manager or administrator.")
    )


class TransitionForm(forms.Form):
    action = forms.ChoiceField(label=_("Status change"), choices=list(Transition.LABELS.items()))
    at = forms.DateTimeField(label=_("When"), required=False, widget=MomentInput, help_text=_("Empty: now."))


class OverrideForm(forms.Form):
    level = forms.ChoiceField(label=_("Level"), choices=Level.choices)
    reason = forms.CharField(
        label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}), help_text=_("Required: why the level differs.")
    )


class AlertCommentForm(forms.Form):
    # Optional on the inbox form, which also acknowledges and resolves; the comment action needs it.
    text = forms.CharField(label=_("Comment"), max_length=2000, required=False)


class IncidentImportForm(forms.Form):
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_("UTF-8 (or GB18030) with a header row; at most 1,000 rows and 2 MB."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    MAX_BYTES = 2 * 1024 * 1024

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise ValidationError(_("The file is larger than 2 MB; split it."))
        raw = upload.read()
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                continue
        raise ValidationError(_("The file is neither UTF-8 nor GB18030 text."))


class IncidentImportConfirmForm(forms.Form):
    """The previewed CSV, sent again with the confirmation: it is checked again before anything is written."""

    content = forms.CharField(widget=forms.HiddenInput, strip=False, max_length=IncidentImportForm.MAX_BYTES)


def _https_by_default(model_field, **kwargs):
    """A ticket link typed without a scheme is https (Django 6's default, chosen now)."""
    if isinstance(model_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return model_field.formfield(**kwargs)


class ActionItemForm(forms.ModelForm):
    """A new closed-loop item; incidents.services.action_item_create writes it."""

    owner = PersonChoiceField(label=_("Owner"), queryset=people())
    verifier = PersonChoiceField(
        label=_("Verifier"),
        queryset=people(),
        required=False,
        help_text=_("Empty: any manager, or anyone but the owner, verifies."),
    )

    class Meta:
        model = ActionItem
        formfield_callback = _https_by_default
        fields = [
            "title",
            "owner",
            "due_at",
            "kind",
            "priority",
            "verifier",
            "description",
            "acceptance_criteria",
            "ticket_url",
        ]
        widgets = {
            "due_at": MomentInput(),
            "description": forms.Textarea(attrs={"rows": 2}),
            "acceptance_criteria": forms.Textarea(attrs={"rows": 2}),
        }

    def service_values(self) -> dict:
        return {name: value for name, value in self.cleaned_data.items() if value is not None}


class ActionItemStepForm(forms.Form):
    action = forms.ChoiceField(label=_("Step"), choices=list(ItemTransition.LABELS.items()))
    reason = forms.CharField(
        label=_("Reason"), required=False, widget=forms.TextInput, help_text=_("Needed to waive an item.")
    )
    expected_version = forms.IntegerField(widget=forms.HiddenInput)


class ActionItemAssignForm(forms.Form):
    owner = PersonChoiceField(label=_("Owner"), queryset=people())
    due_at = forms.DateTimeField(label=_("Due at"), widget=MomentInput)
    expected_version = forms.IntegerField(widget=forms.HiddenInput)


class ItemNewForm(ActionItemForm):
    """An item that comes from no incident: a review meeting, an audit or governance work, for a team."""

    SOURCES = (ActionItem.Source.REVIEW_MEETING, ActionItem.Source.AUDIT, ActionItem.Source.GOVERNANCE)

    team = forms.ModelChoiceField(label=_("Team"), queryset=Team.objects.all())
    source = forms.ChoiceField(
        label=_("Source"), choices=[(s.value, s.label) for s in SOURCES], widget=forms.RadioSelect
    )

    class Meta(ActionItemForm.Meta):
        fields = ["team", "source", "source_note", *ActionItemForm.Meta.fields]


class DrillForm(forms.ModelForm):
    """A drill's plan; incidents.drills.drill_create / drill_update write it."""

    systems = SystemChoiceField(
        label=_("Systems exercised"), queryset=System.objects.select_related("team").order_by("tier", "name")
    )

    class Meta:
        model = Drill
        fields = ["title", "team", "scenario", "systems", "planned_at"]
        widgets = {"planned_at": MomentInput(), "title": forms.TextInput(attrs={"autocomplete": "off"})}

    def service_values(self) -> dict:
        return {**self.cleaned_data, "systems": list(self.cleaned_data["systems"])}


class DrillHoldForm(forms.Form):
    """A drill's outcome; incidents.drills.drill_hold records it. The switch-over is typed in minutes and
    seconds."""

    held_at = forms.DateTimeField(label=_("Held at"), widget=MomentInput)
    result = forms.ChoiceField(label=_("Result"), choices=Drill.Result.choices, widget=forms.RadioSelect)
    switch_minutes = forms.IntegerField(label=_("Switch-over: minutes"), min_value=0, required=False)
    switch_seconds = forms.IntegerField(label=_("and seconds"), min_value=0, max_value=59, required=False)
    findings = forms.CharField(
        label=_("Findings"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("What went wrong or took too long; add each one that needs work as an item below."),
    )

    def service_values(self) -> dict:
        data = self.cleaned_data
        minutes, seconds = data.get("switch_minutes"), data.get("switch_seconds")
        switch = None if minutes is None and seconds is None else (minutes or 0) * 60 + (seconds or 0)
        return {
            "held_at": data["held_at"],
            "result": data["result"],
            "switch_over_seconds": switch,
            "findings": data["findings"],
        }


# --- the A-D severity policy as a form (levels x conditions) -----------------------------------------

# What a condition measures: the kinds of incidents.severity, a tier or flag folded into the choice.
MEASURES = {
    **{f"tier_impact:{tier}": ("tier_impact", tier) for tier in Tier.values},
    "affected_transactions": ("affected_transactions", None),
    "affected_users": ("affected_users", None),
    "funds_loss": ("funds_loss", None),
    **{f"flag:{flag}": ("flag", flag) for flag in severity.FLAGS},
}


def measure_choices() -> list[tuple[str, str]]:
    tiers = [
        (
            f"tier_impact:{tier}",
            _("%(tier)s system impacted, minutes") % {"tier": tier}
            if tier == Tier.P0
            else _("%(tier)s or more critical system impacted, minutes") % {"tier": tier},
        )
        for tier in Tier.values
    ]
    return [
        ("", "—"),
        *tiers,
        ("affected_transactions", _("Failed transactions")),
        ("affected_users", _("Affected users")),
        ("funds_loss", _("Funds loss (%(currency)s)") % {"currency": settings.CURRENCY}),
        ("flag:data_or_security_breach", _("Data or security breach (yes/no)")),
        ("flag:regulatory_reportable", _("Reportable to the regulator (yes/no)")),
    ]


def condition_initial(condition: dict) -> dict:
    """A stored condition as the form's row."""
    kind = condition["kind"]
    if kind == "tier_impact":
        return {"measure": f"tier_impact:{condition['tier']}", "at_least": str(condition["minutes"])}
    if kind == "flag":
        return {"measure": f"flag:{condition['flag']}", "at_least": ""}
    return {"measure": kind, "at_least": str(condition["at_least"])}


class ConditionForm(forms.Form):
    """One condition: what it measures and the threshold it must reach (>=); a yes/no flag has none."""

    measure = forms.ChoiceField(label=_("Measure"), choices=measure_choices, required=False)
    at_least = forms.CharField(
        label=_("At least"),
        required=False,
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "size": 10}),
    )

    def clean(self):
        data = super().clean()
        measure, text = data.get("measure") or "", (data.get("at_least") or "").strip().replace(",", "")
        data["condition"] = None
        if not measure:
            if text:
                self.add_error("measure", _("Choose what this condition measures, or clear the number."))
            return data
        kind, detail = MEASURES[measure]
        if kind == "flag":
            data["condition"] = {"kind": "flag", "flag": detail}
            return data
        if not text:
            self.add_error("at_least", _("Give the threshold the incident must reach."))
            return data
        if kind == "funds_loss":
            try:
                amount = Decimal(text)
            except InvalidOperation:
                amount = None
            if amount is None or not amount.is_finite() or not 0 <= amount < severity.MAX_FUNDS:
                self.add_error("at_least", _("Write an amount of money, e.g. 100000."))
                return data
            data["condition"] = {"kind": kind, "at_least": str(amount)}
            return data
        upper = severity.MAX_MINUTES if kind == "tier_impact" else severity.MAX_COUNT
        if not text.isdigit() or int(text) > upper:
            message = (
                _("Write whole minutes, e.g. 30.") if kind == "tier_impact" else _("Write a whole number, e.g. 10000.")
            )
            self.add_error("at_least", message)
            return data
        if kind == "tier_impact":
            data["condition"] = {"kind": kind, "tier": detail, "minutes": int(text)}
        else:
            data["condition"] = {"kind": kind, "at_least": int(text)}
        return data


# Without JS one spare row per level; the page's script adds more.
ConditionFormSet = forms.formset_factory(ConditionForm, extra=1, can_delete=True, max_num=30, validate_max=True)


class RecoveryTargetsForm(forms.Form):
    """The recovery target of each level A-D, in hours and minutes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for level in Level.values:
            self.fields[f"{level}_hours"] = forms.IntegerField(
                label=_("Level %(level)s: hours") % {"level": level}, min_value=0, max_value=24 * 366 * 10
            )
            self.fields[f"{level}_minutes"] = forms.IntegerField(
                label=_("Level %(level)s: minutes") % {"level": level}, min_value=0, max_value=59
            )

    @staticmethod
    def initial_of(targets: dict) -> dict:
        initial = {}
        for level in Level.values:
            hours, seconds = divmod(int(targets.get(level, 0)), 3600)
            initial[f"{level}_hours"], initial[f"{level}_minutes"] = hours, seconds // 60
        return initial

    def clean(self):
        data = super().clean()
        for level in Level.values:
            hours, minutes = data.get(f"{level}_hours"), data.get(f"{level}_minutes")
            if hours is not None and minutes is not None and hours * 60 + minutes == 0:
                self.add_error(f"{level}_minutes", _("A recovery target of at least one minute."))
        return data

    def targets(self) -> dict[str, int]:
        return {
            level: self.cleaned_data[f"{level}_hours"] * 3600 + self.cleaned_data[f"{level}_minutes"] * 60
            for level in Level.values
        }


class PolicyForm:
    """The severity policy as a form: per level A, B, C a formset of conditions (ConditionFormSet, prefix
    rules-A ...), the recovery targets (RecoveryTargetsForm) and a note. `rules()` and `targets()` give
    what incidents.services.severity_policy_create takes."""

    def __init__(self, data=None, *, policy: SeverityPolicy | None = None):
        rules = policy.rules if policy else {}
        self.levels = {
            level: ConditionFormSet(
                data,
                prefix=f"rules-{level}",
                initial=None if data is not None else [condition_initial(c) for c in rules.get(level, [])],
            )
            for level in severity.CLASSIFIED_LEVELS
        }
        self.recovery = RecoveryTargetsForm(
            data, initial=RecoveryTargetsForm.initial_of(policy.recovery_targets) if policy else None
        )
        self.note = forms.CharField(required=False, max_length=2000)
        self.note_value = (data or {}).get("note", "")
        self.errors: list[str] = []  # the service's, above the form

    def is_valid(self) -> bool:
        results = [formset.is_valid() for formset in self.levels.values()]
        results.append(self.recovery.is_valid())
        try:
            self.note_value = self.note.clean(self.note_value)
        except ValidationError as exc:
            self.errors.extend(_("Note: %(error)s") % {"error": message} for message in exc.messages)
            results.append(False)
        return all(results)

    def rules(self) -> dict[str, list[dict]]:
        return {
            level: [
                form.cleaned_data["condition"]
                for form in formset.forms
                if form.cleaned_data.get("condition") and not form.cleaned_data.get("DELETE")
            ]
            for level, formset in self.levels.items()
        }

    def targets(self) -> dict[str, int]:
        return self.recovery.targets()

    def add_service_errors(self, error: ValidationError) -> None:
        self.errors.extend(error.messages)
