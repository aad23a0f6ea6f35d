from rest_framework import serializers

from config.api import ModelSerializer
from incidents.models import System, Team
from service_levels import services
from service_levels.models import DailyValue, Indicator, PrometheusSource


class SourceSerializer(ModelSerializer):
    """A Prometheus source. `bearer_token` and `password` are write-only: never in an answer; empty or
    left out on a change, the stored one stays. `has_bearer_token` / `has_password` say whether one is set."""

    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), required=False, allow_null=True)
    bearer_token = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=500)
    password = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=500)
    has_bearer_token = serializers.SerializerMethodField()
    has_password = serializers.SerializerMethodField()

    class Meta:
        model = PrometheusSource
        fields = ["id", *services.SOURCE_FIELDS, "has_bearer_token", "has_password", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        # The services check what the model checks, with the message on the field at fault.
        validators: list = []
        extra_kwargs = {"name": {"validators": []}, "url": {"validators": []}}

    def get_has_bearer_token(self, source) -> bool:
        return bool(source.bearer_token)

    def get_has_password(self, source) -> bool:
        return bool(source.password)


class IndicatorSerializer(ModelSerializer):
    system = serializers.SlugRelatedField(slug_field="code", queryset=System.objects.all())
    source = serializers.PrimaryKeyRelatedField(queryset=PrometheusSource.objects.all())
    team = serializers.SlugRelatedField(source="system.team", slug_field="slug", read_only=True)

    class Meta:
        model = Indicator
        fields = ["id", *services.INDICATOR_FIELDS, "team", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        validators: list = []
        extra_kwargs = {"objective": {"validators": []}}


class MeasurementSerializer(serializers.Serializer):
    """What the test query found over the last 24 hours."""

    status = serializers.ChoiceField(choices=DailyValue.Status.choices)
    value = serializers.DecimalField(
        max_digits=12,
        decimal_places=6,
        allow_null=True,
        coerce_to_string=True,
        help_text="Percent, as an exact string.",
    )
    good = serializers.FloatField(allow_null=True)
    total = serializers.FloatField(allow_null=True)
    problem = serializers.CharField(help_text="A code: empty when measured.")
    message = serializers.CharField(help_text="Why there is no value, in words (the reader's language).")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class DaySerializer(serializers.Serializer):
    day = serializers.DateField()
    status = serializers.CharField(help_text="ok, missing, failed, or not_pulled (nothing stored yet).")
    value = serializers.DecimalField(
        max_digits=12,
        decimal_places=6,
        allow_null=True,
        coerce_to_string=True,
        help_text="Percent, as an exact string.",
    )
    good = serializers.FloatField(allow_null=True)
    total = serializers.FloatField(allow_null=True)
    below_objective = serializers.BooleanField()
    problem = serializers.CharField(help_text="Why there is no value, in words.")
    attempts = serializers.IntegerField()
    pulled_at = serializers.DateTimeField(allow_null=True)
