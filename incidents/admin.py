from collections.abc import Callable

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from incidents import selectors, services
from incidents.models import (
    ActionItem,
    Drill,
    Incident,
    ReviewRevision,
    SeverityPolicy,
    Status,
    System,
    Team,
    TimelineEntry,
    review_sections_form_field,
)
from incidents.severity import describe_condition, explain


class RecordAdmin(admin.ModelAdmin):
    """For records the system writes (policy versions, timelines, alerts): looked at here, never edited."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ConfigurationAdmin(admin.ModelAdmin):
    """For records written by a create and an update service (`create`, `update`, `key` set by the
    subclass), with the service's field list: the admin saves what the pages and the API save."""

    create: Callable[..., models.Model]
    update: Callable[..., models.Model]
    key: str

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in self.fields if name in form.cleaned_data}
        if change:
            self.update(**{self.key: obj.pk}, changes=values)
        else:
            obj.pk = self.create(**values).pk

    def save_related(self, request, form, formsets, change):
        # Many-to-many relations were set by the service with the rest (no form.save_m2m()).
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


@admin.register(Team)
class TeamAdmin(ConfigurationAdmin):
    list_display = ("name", "slug")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("managers", "members")
    fields = services.TEAM_FIELDS
    create, update, key = staticmethod(services.team_create), staticmethod(services.team_update), "team_id"

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "review_required_sections":
            return review_sections_form_field(label=db_field.verbose_name, help_text=db_field.help_text)
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(System)
class SystemAdmin(ConfigurationAdmin):
    list_display = ("code", "name", "tier", "team", "availability_target")
    list_filter = ("tier", "team")
    search_fields = ("code", "name")
    list_select_related = ("team",)
    fields = services.SYSTEM_FIELDS
    create, update, key = staticmethod(services.system_create), staticmethod(services.system_update), "system_id"


@admin.register(SeverityPolicy)
class SeverityPolicyAdmin(RecordAdmin):
    """Read-only here: a new version is made through the API (or the settings page), never an edit."""

    list_display = ("version", "created_at", "created_by", "note")
    readonly_fields = ("version", "rules_in_words", "rules", "recovery_targets", "note", "created_at", "created_by")
    fields = readonly_fields

    @admin.display(description=_("rules in words"))
    def rules_in_words(self, policy):
        return "\n".join(
            f"{level}: " + "; ".join(describe_condition(c) for c in conditions)
            for level, conditions in policy.rules.items()
        )


class TimelineInline(admin.TabularInline):
    model = TimelineEntry
    fields = ("at", "kind", "author", "field", "old_value", "new_value", "text")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("at", "id")

    def has_add_permission(self, request, obj=None):
        return False


class ActionItemInline(admin.TabularInline):
    """The incident's items, read-only here: they change through the action item page or the API."""

    model = ActionItem
    fields = ("title", "kind", "priority", "owner", "verifier", "status", "due_at", "completed_at", "verified_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("due_at", "id")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Saves go through incidents.services, so the admin writes the same timeline as the API.
    Status and level change by transitions and overrides (API and pages), not by editing fields."""

    list_display = ("id", "title", "level", "status", "team", "occurred_at", "recovered_at")
    list_filter = ("level", "status", "team", "detection_source", "cause_category")
    search_fields = ("title", "summary", "cause", "handling")
    date_hierarchy = "occurred_at"
    list_select_related = ("team",)
    filter_horizontal = ("systems",)
    inlines = [ActionItemInline, TimelineInline]
    actions = ["reevaluate_severity"]

    def get_inlines(self, request, obj):
        # A new incident has no items yet; they are added to it afterwards.
        return self.inlines if obj is not None else [TimelineInline]

    _status_fields = ("status", "recovered_at", "resolved_at", "closed_at")
    _severity_fields = (
        "level",
        "classified_level",
        "severity_explanation",
        "severity_policy",
        "level_override",
        "level_override_reason",
        "recovery_target",
        "version",
    )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (*self._status_fields, *self._severity_fields)

    def get_exclude(self, request, obj=None):
        if obj is None:  # a new incident: facts and timestamps only; the service derives the rest
            return (
                "status",
                "closed_at",
                "level",
                "classified_level",
                "severity_matches",
                "severity_policy",
                "level_override",
                "level_override_reason",
                "recovery_target",
                "version",
                "created_by",
            )
        return ("created_by", "severity_matches")

    @admin.display(description=_("explanation"))
    def severity_explanation(self, incident):
        return explain(incident.classified_level, incident.severity_matches)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = set(services.EDITABLE_FIELDS) | {"systems"}
        if change:
            changes = {name: data[name] for name in form.changed_data if name in fields}
            if "systems" in changes:
                changes["systems"] = list(changes["systems"])
            services.incident_update(incident_id=obj.pk, by=request.user, expected_version=None, changes=changes)
        else:
            values = {name: data[name] for name in fields if name in data}
            values["systems"] = list(values["systems"])
            obj.pk = services.incident_create(by=request.user, **values).pk

    def save_related(self, request, form, formsets, change):
        # Systems were saved by the service with the rest (no form.save_m2m()); the inline is read-only.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    @admin.action(description=_("Re-evaluate severity under the current policy"))
    def reevaluate_severity(self, request, queryset):
        result = services.incidents_reevaluate(incidents=queryset, by=request.user)
        self.message_user(
            request, _("%(evaluated)d incidents evaluated, %(level_changed)d changed level.") % result, messages.SUCCESS
        )


@admin.register(TimelineEntry)
class TimelineEntryAdmin(RecordAdmin):
    list_display = ("incident", "at", "kind", "author", "field", "old_value", "new_value")
    list_filter = ("kind",)
    search_fields = ("incident__title", "text")
    list_select_related = ("incident", "author")


@admin.register(ReviewRevision)
class ReviewRevisionAdmin(RecordAdmin):
    """Every text each section of a review (复盘) had, written through incidents.reviews: read here."""

    list_display = ("incident", "section", "version", "by", "at")
    list_filter = ("section__key",)
    search_fields = ("text", "section__review__incident__title")
    list_select_related = ("section__review__incident", "by")

    @admin.display(description=_("incident"))
    def incident(self, revision: ReviewRevision) -> Incident:
        return revision.section.review.incident


class OverdueFilter(admin.SimpleListFilter):
    title = _("overdue")
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", _("Overdue")), ("no", _("Not overdue"))]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return selectors.filter_action_items(queryset, overdue_only=self.value() == "yes")
        return queryset


@admin.register(ActionItem)
class ActionItemAdmin(admin.ModelAdmin):
    """Saves go through incidents.services, so the admin writes the same timeline as the API. The
    status changes by steps (the actions of the list, the API, the pages), not by editing fields;
    a waiver, which needs a reason, is given through the API or the pages."""

    list_display = (
        "id",
        "title",
        "source",
        "team",
        "incident",
        "owner",
        "status",
        "priority",
        "kind",
        "due_at",
        "days_overdue",
    )
    list_filter = ("status", "kind", "priority", OverdueFilter, "team", "source")
    search_fields = ("title", "description", "incident__title", "source_note", "owner__username")
    date_hierarchy = "due_at"
    list_select_related = ("incident", "team", "owner")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    actions = ["start", "complete", "verify", "reopen"]
    _editable = services.ITEM_EDITABLE_FIELDS
    _record = (
        "status",
        "started_at",
        "completed_at",
        "verified_at",
        "verified_by",
        "waived_at",
        "waived_by",
        "waive_reason",
        "version",
        "created_by",
        "created_at",
        "updated_at",
    )

    # Where the item comes from, fixed once it exists (incidents.services.action_item_create's rules).
    _origin = ("source", "incident", "drill", "team", "source_note")

    def get_fields(self, request, obj=None):
        if obj is None:
            return (*self._origin, *self._editable)
        return (*self._origin, *self._editable, *self._record)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else (*self._origin, *self._record)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # What the service accepts: open incidents' loops, active people.
        if db_field.name == "incident":
            kwargs["queryset"] = Incident.objects.exclude(status=Status.CLOSED)
        elif db_field.name in ("owner", "verifier"):
            kwargs["queryset"] = User.objects.filter(is_active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description=_("days overdue"))
    def days_overdue(self, item):
        return selectors.days_overdue(item, now=timezone.now())

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            changes = {name: data[name] for name in form.changed_data if name in self._editable}
            services.action_item_update(item_id=obj.pk, by=request.user, **changes)
        else:
            values = {name: data[name] for name in self._editable if name in data}
            incident, drill = data.get("incident"), data.get("drill")
            obj.pk = services.action_item_create(
                by=request.user,
                source=data["source"],
                incident_id=incident.pk if incident else None,
                drill_id=drill.pk if drill else None,
                team=data.get("team"),
                source_note=data.get("source_note") or "",
                **values,
            ).pk

    def _step(self, request, queryset, action: str) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        try:
            services.action_items_bulk_update(item_ids=ids, by=request.user, action=action)
        except (ValidationError, PermissionDenied) as exc:
            problems = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
            self.message_user(request, " ".join(problems), messages.ERROR)
            return
        self.message_user(request, _("%(count)d action items changed.") % {"count": len(ids)}, messages.SUCCESS)

    @admin.action(description=_("Start the chosen action items"))
    def start(self, request, queryset):
        self._step(request, queryset, services.ItemTransition.START)

    @admin.action(description=_("Mark the chosen action items done"))
    def complete(self, request, queryset):
        self._step(request, queryset, services.ItemTransition.COMPLETE)

    @admin.action(description=_("Verify the chosen action items"))
    def verify(self, request, queryset):
        self._step(request, queryset, services.ItemTransition.VERIFY)

    @admin.action(description=_("Reopen the chosen action items"))
    def reopen(self, request, queryset):
        self._step(request, queryset, services.ItemTransition.REOPEN)


@admin.register(Drill)
class DrillAdmin(admin.ModelAdmin):
    """Read only: drills are planned and recorded on the pages and through the API (incidents.drills)."""

    list_display = ("id", "title", "team", "scenario", "planned_at", "held_at", "result", "switch_over_seconds")
    list_filter = ("scenario", "result", "team")
    search_fields = ("title", "findings")
    date_hierarchy = "planned_at"
    list_select_related = ("team",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
