from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from incidents.admin import RecordAdmin
from stability import channels, delivery, services
from stability.models import (
    AlertActivity,
    AlertOccurrence,
    Integration,
    MaintenanceWindow,
    Notification,
    NotificationChannel,
    OutboundMessage,
    PublishedReport,
    RejectedDelivery,
    ReminderPolicy,
)


class IntegrationForm(forms.ModelForm):
    class Meta:
        model = Integration
        fields = services.INTEGRATION_FIELDS

    def clean_system_labels(self):
        # Routing reads this as a sequence of label names: a bare string would be read letter by letter.
        value = self.cleaned_data["system_labels"]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise forms.ValidationError(_('A list of label names, such as ["system", "service"].'))
        return value


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    """New integrations are made by stability.services.integration_create: only a digest of the token
    is stored, so the token is shown once, in the message after saving. Disable instead of deleting."""

    form = IntegrationForm
    list_display = ("name", "kind", "enabled", "is_test", "default_team", "default_system", "token_prefix")
    list_filter = ("kind", "enabled", "is_test")
    search_fields = ("name",)
    list_select_related = ("default_team", "default_system")
    readonly_fields = ("token_prefix", "created_at", "created_by")
    actions = ["rotate_token"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (*self.readonly_fields, "kind")

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in services.INTEGRATION_FIELDS if name in form.cleaned_data}
        if change:
            services.integration_update(integration_id=obj.pk, changes=values)
            return
        integration, token = services.integration_create(by=request.user, **values)
        obj.pk, obj.token_prefix, obj.token_digest = integration.pk, integration.token_prefix, integration.token_digest
        messages.success(
            request,
            _("The token of %(name)s, shown this once (only a digest is kept): %(token)s")
            % {"name": integration.name, "token": token},
        )

    @admin.action(description=_("Rotate the token (the old one stops working)"))
    def rotate_token(self, request, queryset):
        for integration in queryset:
            token = services.integration_rotate_token(integration=integration)
            messages.success(
                request,
                _("The new token of %(name)s, shown this once: %(token)s") % {"name": integration.name, "token": token},
            )


class MaintenanceWindowForm(forms.ModelForm):
    class Meta:
        model = MaintenanceWindow
        fields = services.MAINTENANCE_WINDOW_FIELDS

    def clean(self):
        cleaned = super().clean()
        try:
            services.check_window_times(starts_at=cleaned.get("starts_at"), ends_at=cleaned.get("ends_at"))
        except ValidationError as error:
            self.add_error(None, error)
        return cleaned


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin):
    """Saved through stability.services, like the API."""

    form = MaintenanceWindowForm
    list_display = ("system", "starts_at", "ends_at", "reason", "created_by")
    list_filter = ("system",)
    search_fields = ("reason", "system__code")
    date_hierarchy = "starts_at"
    list_select_related = ("system", "created_by")
    readonly_fields = ("created_by", "created_at")

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in MaintenanceWindowForm.Meta.fields}
        if change:
            services.maintenance_window_update(window_id=obj.pk, changes=values)
        else:
            obj.pk = services.maintenance_window_create(by=request.user, **values).pk


class AlertActivityInline(admin.TabularInline):
    model = AlertActivity
    fields = ("at", "kind", "by", "text", "incident")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("at", "id")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AlertOccurrence)
class AlertOccurrenceAdmin(RecordAdmin):
    """Follow-ups happen in the API and pages, where they are timed; here alerts are only looked at."""

    list_display = (
        "alertname",
        "severity",
        "status",
        "team",
        "system",
        "received_at",
        "followed_up_at",
        "excluded",
        "notifications",
    )
    list_filter = ("status", "severity", "team", "system", "excluded")
    search_fields = ("alertname", "fingerprint", "summary")
    date_hierarchy = "received_at"
    list_select_related = ("team", "system")
    inlines = [AlertActivityInline]


@admin.register(AlertActivity)
class AlertActivityAdmin(RecordAdmin):
    list_display = ("occurrence", "at", "kind", "by", "incident")
    list_filter = ("kind",)
    search_fields = ("occurrence__alertname", "text")
    list_select_related = ("occurrence", "by", "incident")


@admin.register(RejectedDelivery)
class RejectedDeliveryAdmin(RecordAdmin):
    list_display = ("received_at", "integration", "reason", "remote_addr")
    list_filter = ("integration",)
    search_fields = ("reason",)
    date_hierarchy = "received_at"
    list_select_related = ("integration",)


# --- reminders and notifications (docs/reminders.md) -----------------------------------------------


class NotificationChannelForm(forms.ModelForm):
    secret = forms.CharField(
        label=_("secret"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Never shown. Leave empty to keep the one stored."),
    )
    clear_secret = forms.BooleanField(label=_("clear the secret"), required=False)

    class Meta:
        model = NotificationChannel
        fields = channels.CHANNEL_FIELDS

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_secret"):
            cleaned["secret"] = ""
        elif not cleaned.get("secret") and self.instance.pk:
            cleaned["secret"] = self.instance.secret
        return cleaned

    def _post_clean(self):
        # The whole check (team or person, a target that suits the kind) is the service's, on save.
        super()._post_clean()
        try:
            channels.validate_channel(self.instance, fields=False)
        except ValidationError as error:
            self._update_errors(error)


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    """Saved through stability.channels, like the API; the secret is write-only."""

    form = NotificationChannelForm
    list_display = ("name", "kind", "team", "user", "language", "enabled")
    list_filter = ("kind", "enabled", "team")
    search_fields = ("name", "user__username", "team__slug")
    list_select_related = ("team", "user")

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in channels.CHANNEL_FIELDS}
        if change:
            channels.channel_update(channel_id=obj.pk, changes=values)
        else:
            obj.pk = channels.channel_create(**values).pk

    def delete_model(self, request, obj):
        channels.channel_delete(channel_id=obj.pk)


class ReminderPolicyForm(forms.ModelForm):
    class Meta:
        model = ReminderPolicy
        fields = services.REMINDER_POLICY_FIELDS

    def clean_days_before(self):
        # The JSON field takes any value; the rule for the days is the service's, as on the settings page.
        value = self.cleaned_data["days_before"]
        if not isinstance(value, list):
            raise forms.ValidationError(_("A list of whole days, such as [3, 1]."))
        return services.reminder_days_before(value)


@admin.register(ReminderPolicy)
class ReminderPolicyAdmin(admin.ModelAdmin):
    """A team's own reminder schedule; teams without one follow the REMINDER_* settings."""

    form = ReminderPolicyForm
    list_display = services.REMINDER_POLICY_FIELDS
    list_select_related = ("team",)

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in services.REMINDER_POLICY_FIELDS}
        if change:
            services.reminder_policy_update(policy_id=obj.pk, changes=values)
        else:
            obj.pk = services.reminder_policy_create(**values).pk

    def delete_model(self, request, obj):
        services.reminder_policy_delete(policy_id=obj.pk)


@admin.register(Notification)
class NotificationAdmin(RecordAdmin):
    """The notification log: recorded by the sweep, delivered by workers; failures keep their reason."""

    list_display = (
        "created_at",
        "event",
        "step",
        "action_item",
        "alert",
        "recipient",
        "channel",
        "status",
        "attempts",
        "deliver_after",
        "sent_at",
        "last_error",
    )
    list_filter = ("status", "event", "channel")
    search_fields = ("key", "last_error", "recipient__username")
    date_hierarchy = "created_at"
    list_select_related = ("action_item", "alert", "recipient", "channel")
    actions = ["retry"]

    @admin.action(description=_("Send the failed ones again"))
    def retry(self, request, queryset):
        count = 0
        for notification in queryset.filter(status=Notification.Status.FAILED):
            delivery.notification_retry(notification_id=notification.pk)
            count += 1
        messages.success(request, _("%(count)d notifications will be sent again.") % {"count": count})


@admin.register(OutboundMessage)
class OutboundMessageAdmin(RecordAdmin):
    """Every chat post, email and webhook call tried, with its outcome."""

    list_display = ("started_at", "destination", "channel", "entries", "ok", "error")
    list_filter = ("ok", "channel")
    date_hierarchy = "started_at"
    list_select_related = ("channel",)


@admin.register(PublishedReport)
class PublishedReportAdmin(RecordAdmin):
    """Reports as they were sent or published (stability.published): frozen, never edited here."""

    list_display = ("period", "team", "revision", "reason", "published_at", "published_by", "revised_checked_at")
    list_filter = ("reason", "period_kind", "team")
    search_fields = ("period",)
    date_hierarchy = "published_at"
    list_select_related = ("team", "published_by")
    exclude = ("watched",)
