"""The webhook endpoints alerting systems post to (contracts.md). Kept lean: they are the hot path.

Answers: 200 with accepted / new / repeated / rejected counts (every accepted alert is stored
when the answer is sent); 400 for a body that is not JSON or has no alert list (kept as a
rejected delivery); 401 unknown token; 403 disabled integration or another kind's endpoint;
413 body over INGEST_MAX_BODY_BYTES; 429 over the integration's rate, with Retry-After.
Bodies come with a Content-Length or chunked (Transfer-Encoding: chunked, which gunicorn decodes);
either way at most INGEST_MAX_BODY_BYTES + 1 bytes are read into memory.
"""

from functools import partial

from django.http import HttpRequest, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.views import APIView

from stability.ingestion import Refusal, Refused, receive
from stability.models import Integration


class GenericAlertSerializer(serializers.Serializer):
    """One alert of the generic format (documentation of the wire format)."""

    labels = serializers.DictField(
        child=serializers.CharField(),
        help_text=(
            "Required, non-empty. `alertname`, the integration's team label (default `team`), system labels "
            "(default `system`, then `service`) and severity label (default `severity`) are read from here."
        ),
    )
    annotations = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text=(
            "`summary` (or `description`) is shown as the alert's summary. In every string, NUL and lone "
            "surrogates (which PostgreSQL cannot store) become U+FFFD."
        ),
    )
    status = serializers.ChoiceField(choices=["firing", "resolved"], required=False, default="firing")
    starts_at = serializers.DateTimeField(
        required=False,
        help_text=(
            "RFC 3339 with an offset, from 2000-01-01 to a day ahead of the tracker's clock. Without it, the "
            "alert belongs to the open occurrence of its fingerprint, else starts a new one now."
        ),
    )
    ends_at = serializers.DateTimeField(required=False, help_text="With status resolved: when it ended.")
    fingerprint = serializers.CharField(
        required=False,
        max_length=64,
        help_text=("Your identity for the alert. Default: SHA-256 of the sorted label set."),
    )
    source_url = serializers.URLField(required=False)
    silenced = serializers.BooleanField(
        required=False, default=False, help_text="Stored, but excluded from follow-up rates."
    )


class GenericBodySerializer(serializers.Serializer):
    alerts = GenericAlertSerializer(many=True)


class RejectedAlertSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position in the body's alert list.")
    reason = serializers.CharField()


class IngestAnswerSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Alerts stored (new or repeated).")
    new = serializers.IntegerField(help_text="New alert occurrences.")
    repeated = serializers.IntegerField(help_text="Repeat notifications of known occurrences.")
    rejected = RejectedAlertSerializer(many=True)


_STATUS = {
    Refusal.UNAUTHORISED: status.HTTP_401_UNAUTHORIZED,
    Refusal.TOO_MANY_WRONG_TOKENS: status.HTTP_429_TOO_MANY_REQUESTS,
    Refusal.DISABLED: status.HTTP_403_FORBIDDEN,
    Refusal.WRONG_KIND: status.HTTP_403_FORBIDDEN,
    Refusal.RATE_LIMITED: status.HTTP_429_TOO_MANY_REQUESTS,
    Refusal.TOO_LARGE: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    Refusal.BAD_BODY: status.HTTP_400_BAD_REQUEST,
}


def _json(data: dict, status: int = 200, headers: dict | None = None) -> JsonResponse:
    return JsonResponse(data, status=status, headers=headers, json_dumps_params={"ensure_ascii": False})


def _body(request, limit: int) -> bytes | None:
    """The body, or None when it is over `limit` bytes.

    Django reads Content-Length bytes and nothing without one, so a chunked body (Go's and curl's
    choice for a streamed body) looked empty: "not valid JSON". The server decodes the chunks and, per
    the WSGI convention gunicorn follows, marks such an input `wsgi.input_terminated`: it can be read to
    its end. Where the server does not say so (runserver), there is no safe end to read to."""
    length = request.META.get("CONTENT_LENGTH")
    if length or not request.META.get("wsgi.input_terminated"):
        try:
            declared = int(length or 0)
        except ValueError:  # what Django's request does with it too: no body
            declared = 0
        return None if declared > limit else request.body
    body = request.META["wsgi.input"].read(limit + 1)
    return None if len(body) > limit else body


def _bearer(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _sep, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def webhook_answer(request: HttpRequest, *, kind: str) -> JsonResponse:
    """A POST to the webhook of `kind`: stability.ingestion.receive, its outcome mapped to HTTP."""
    outcome = receive(kind=kind, token=_bearer(request), sender=request, body_up_to=partial(_body, request))
    if isinstance(outcome, Refused):
        headers = {}
        if outcome.retry_after is not None:
            headers["Retry-After"] = str(outcome.retry_after)
        if outcome.reason is Refusal.UNAUTHORISED:
            headers["WWW-Authenticate"] = 'Bearer realm="integrations"'
        return _json({"detail": outcome.detail}, status=_STATUS[outcome.reason], headers=headers)
    return _json(
        {
            "accepted": outcome.accepted,
            "new": outcome.new,
            "repeated": outcome.repeated,
            "rejected": [{"index": r.index, "reason": r.reason} for r in outcome.rejected],
        }
    )


class _Webhook(APIView):
    """A POST reaches this view only where stability.middleware.WebhookShortcut does not answer it (a
    test calling the view); the class is an APIView for the OpenAPI schema. A dispatch() that skipped
    DRF's machinery for POSTs gained nothing measurable even without the shortcut (bench/ingest.py
    --only 1: gunicorn CPU per notification 1.55 and 1.21 ms with it, 1.54 and 1.37 ms without), so
    DRF's plain path stays."""

    kind: str = ""
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    parser_classes: list = []  # the body is read as bytes, after the size check

    def post(self, request):  # documented by the subclasses
        return webhook_answer(request, kind=self.kind)


_ANSWERS = {
    200: IngestAnswerSerializer,
    400: OpenApiTypes.OBJECT,
    401: OpenApiTypes.OBJECT,
    403: OpenApiTypes.OBJECT,
    413: OpenApiTypes.OBJECT,
    429: OpenApiTypes.OBJECT,
}
_AUTH = [{"integrationToken": []}]


class AlertmanagerWebhook(_Webhook):
    kind = Integration.Kind.ALERTMANAGER

    @extend_schema(
        operation_id="integrations_alertmanager_webhook",
        tags=["webhooks"],
        auth=_AUTH,
        responses=_ANSWERS,
        request={"application/json": OpenApiTypes.OBJECT},
        description="Prometheus Alertmanager webhook receiver body, version 4 (`webhook_configs` with "
        "`http_config.authorization.credentials` set to the integration token).",
    )
    def post(self, request):
        return super().post(request)


class GrafanaWebhook(_Webhook):
    kind = Integration.Kind.GRAFANA

    @extend_schema(
        operation_id="integrations_grafana_webhook",
        tags=["webhooks"],
        auth=_AUTH,
        responses=_ANSWERS,
        request={"application/json": OpenApiTypes.OBJECT},
        description="Grafana alerting webhook contact point body (Authorization header: Bearer <token>).",
    )
    def post(self, request):
        return super().post(request)


class GenericWebhook(_Webhook):
    kind = Integration.Kind.GENERIC

    @extend_schema(
        operation_id="integrations_generic_webhook",
        tags=["webhooks"],
        auth=_AUTH,
        responses=_ANSWERS,
        request=GenericBodySerializer,
        description="The generic format: any system that can POST JSON. Batches welcome.",
        examples=[
            OpenApiExample(
                "Two alerts",
                request_only=True,
                value={
                    "alerts": [
                        {
                            "labels": {
                                "alertname": "PayoutChannelTimeouts",
                                "system": "payout",
                                "severity": "critical",
                            },
                            "annotations": {"summary": "招行代付通道超时率 12%"},
                            "starts_at": "2026-11-02T08:00:00+08:00",
                        },
                        {
                            "labels": {"alertname": "PayoutChannelTimeouts", "system": "payout"},
                            "status": "resolved",
                            "starts_at": "2026-11-02T07:00:00+08:00",
                            "ends_at": "2026-11-02T07:20:00+08:00",
                        },
                    ]
                },
            )
        ],
    )
    def post(self, request):
        return super().post(request)
