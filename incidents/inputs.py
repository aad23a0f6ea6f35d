"""What a person enters for an incident, read into the arguments of incidents.services.incident_create:
one definition for the API (incidents.api.serializers.IncidentWriteSerializer) and the CSV import of the
pages (web.incident_csv), so a row of a file is read exactly as the same incident posted as JSON."""

from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from config.api import TimestampField
from incidents.models import CauseCategory, DetectionSource, System, Team

User = get_user_model()


class RejectUnknownFieldsMixin:
    """A misspelt field name is a mistake worth a 400, not something to ignore silently."""

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        if unknown:
            raise serializers.ValidationError({name: [_("Unknown field.")] for name in unknown})
        return super().validate(attrs)


class UsernameField(serializers.SlugRelatedField):
    def __init__(self, **kwargs):
        kwargs.setdefault("queryset", User.objects.filter(is_active=True))
        kwargs.setdefault("error_messages", {"does_not_exist": _("Unknown or inactive username '{value}'.")})
        super().__init__(slug_field="username", **kwargs)


class IncidentInput(RejectUnknownFieldsMixin, serializers.Serializer):
    """What a person enters. Only title, systems, occurred_at, detected_at and detection_source are
    needed at first; everything else can follow."""

    title = serializers.CharField(max_length=200)
    summary = serializers.CharField(required=False, allow_blank=True)
    systems = serializers.SlugRelatedField(
        slug_field="code",
        many=True,
        queryset=System.objects.select_related("team"),
        allow_empty=False,
        help_text="System codes.",
        # In words, not "Object with code=x does not exist."
        error_messages={"does_not_exist": _("Unknown system code '{value}'.")},
    )
    team = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Team.objects.all(),
        required=False,
        help_text="Team slug; defaults to the team of the first system.",
        error_messages={"does_not_exist": _("Unknown team '{value}'.")},
    )
    owner = UsernameField(required=False, allow_null=True)
    commander = UsernameField(required=False, allow_null=True)
    communications_lead = UsernameField(required=False, allow_null=True)
    detection_source = serializers.ChoiceField(choices=DetectionSource.choices)
    occurred_at = TimestampField()
    detected_at = TimestampField()
    responded_at = TimestampField(required=False, allow_null=True)
    recovered_at = TimestampField(required=False, allow_null=True)
    resolved_at = TimestampField(required=False, allow_null=True)
    affected_users = serializers.IntegerField(
        required=False, min_value=0, error_messages={"min_value": _("Cannot be negative.")}
    )
    affected_transactions = serializers.IntegerField(
        required=False, min_value=0, error_messages={"min_value": _("Cannot be negative.")}
    )
    funds_loss = serializers.DecimalField(
        required=False,
        max_digits=16,
        decimal_places=2,
        min_value=0,
        error_messages={"min_value": _("Cannot be negative.")},
    )
    data_or_security_breach = serializers.BooleanField(required=False)
    regulatory_reportable = serializers.BooleanField(required=False)
    availability_impact = serializers.DecimalField(
        required=False,
        allow_null=True,
        max_digits=4,
        decimal_places=3,
        min_value=0,
        max_value=1,
        error_messages={"min_value": _("Must be between 0 and 1."), "max_value": _("Must be between 0 and 1.")},
    )
    cause_category = serializers.ChoiceField(choices=CauseCategory.choices, required=False)
    cause = serializers.CharField(required=False, allow_blank=True)
    handling = serializers.CharField(required=False, allow_blank=True)
