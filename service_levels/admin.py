from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from service_levels import services
from service_levels.models import DailyValue, Indicator, PrometheusSource


class SourceForm(forms.ModelForm):
    # Write-only: never rendered back; empty on a change keeps the stored one (services.source_update).
    bearer_token = forms.CharField(
        label=_("Bearer token"), required=False, widget=forms.PasswordInput(render_value=False)
    )
    password = forms.CharField(label=_("Password"), required=False, widget=forms.PasswordInput(render_value=False))

    class Meta:
        model = PrometheusSource
        fields = services.SOURCE_FIELDS

    def _kept(self, name: str) -> str:
        return self.cleaned_data[name] or (getattr(self.instance, name) if self.instance.pk else "")

    def clean_bearer_token(self):
        return self._kept("bearer_token")

    def clean_password(self):
        return self._kept("password")

    def _post_clean(self):
        super()._post_clean()
        try:
            services.check_source(self.instance)
        except ValidationError as error:
            self._update_errors(error)


class _ThroughService:
    """Saved by the app's services, like the API and the settings pages (the forms ran their checks)."""

    def _values(self, form, fields):
        return {name: form.cleaned_data[name] for name in fields if name in form.cleaned_data}


@admin.register(PrometheusSource)
class PrometheusSourceAdmin(_ThroughService, admin.ModelAdmin):
    form = SourceForm
    list_display = ("name", "team", "url", "auth", "verify_tls", "timeout_seconds", "enabled")
    list_filter = ("enabled", "auth")
    search_fields = ("name", "url")

    def save_model(self, request, obj, form, change):
        values = self._values(form, services.SOURCE_FIELDS)
        if change:
            services.source_update(source_id=obj.pk, changes=values)
        else:
            obj.pk = services.source_create(**values).pk

    def delete_model(self, request, obj):
        services.source_delete(source_id=obj.pk)


class IndicatorForm(forms.ModelForm):
    class Meta:
        model = Indicator
        fields = services.INDICATOR_FIELDS

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        try:
            services.check_indicator_shape(self.instance)
            services.check_expressions(self.instance)
        except ValidationError as error:
            self._update_errors(error)


@admin.register(Indicator)
class IndicatorAdmin(_ThroughService, admin.ModelAdmin):
    form = IndicatorForm
    list_display = ("name", "system", "kind", "objective", "source", "enabled")
    list_filter = ("enabled", "kind", "system__team")
    search_fields = ("name", "system__code")
    list_select_related = ("system", "source")

    def save_model(self, request, obj, form, change):
        # The form asked Prometheus about the expressions already.
        values = self._values(form, services.INDICATOR_FIELDS)
        if change:
            services.indicator_update(indicator_id=obj.pk, changes=values, check=False)
        else:
            obj.pk = services.indicator_create(**values, check=False).pk

    def has_delete_permission(self, request, obj=None):
        return False  # its days are the record: disable it instead


@admin.register(DailyValue)
class DailyValueAdmin(admin.ModelAdmin):
    """What the pulls recorded; changed only by pulling again (backfill_service_levels)."""

    list_display = ("indicator", "day", "status", "ratio", "good", "total", "problem", "attempts", "pulled_at")
    list_filter = ("status", "indicator")
    date_hierarchy = "day"
    list_select_related = ("indicator__system",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
