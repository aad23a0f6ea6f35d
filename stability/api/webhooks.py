"""The webhook endpoints alerting systems post to (contracts.md). Kept lean: they are the hot path.

Answers: 200 with accepted / new / repeated / rejected counts (every accepted alert is stored
when the answer is sent); 400 for a body that is not JSON or has no alert list (kept as a
rejected delivery); 401 unknown token; 403 disabled integration or another kind's endpoint;
413 body over INGEST_MAX_BODY_BYTES; 429 over the integration's rate, with Retry-After.
Bodies come with a Content-Length or chunked (Transfer-Encoding: chunked, which gunicorn decodes);
either way at most INGEST_MAX_BODY_BYTES + 1 bytes are read into memory.
"""

from django.conf import settings
from django.http import JsonResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.views import APIView

from accounts.guessing import token_failure, token_refusal
from accounts.tokens import digest_of
from stability.formats import BodyError, read_body
from stability.ingestion import (
    alerts_ingest,
    describe_rejections,
    integration_route,
    over_rate_limit,
    rejected_delivery_record,
)
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


class _Webhook(APIView):
    kind: str = ""
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    parser_classes: list = []  # the body is read as bytes, after the size check

    def dispatch(self, request, *args, **kwargs):
        """The hot path: a POST is answered by plain Django, without DRF's per-request machinery (content
        negotiation, Request wrapper, renderers); the class stays an APIView for the OpenAPI schema."""
        if request.method == "POST":
            return self.ingest(request)
        return super().dispatch(request, *args, **kwargs)

    def _refuse(self, http_status: int, detail: str, headers: dict | None = None) -> JsonResponse:
        return _json({"detail": detail}, status=http_status, headers=headers)

    def post(self, request):  # documented by the subclasses; answered by dispatch() -> ingest()
        return self.ingest(request)

    def ingest(self, request):
        token = _bearer(request)
        refused = token_refusal(scope="webhook", request=request) if token else None  # memory only
        route = integration_route(token_digest=digest_of(token)) if token and refused is None else None
        if route is None:
            if token and (wait := refused or token_failure(scope="webhook", request=request)):
                return self._refuse(
                    status.HTTP_429_TOO_MANY_REQUESTS,
                    _("Too many wrong tokens from this address; retry in %(wait)s s.") % {"wait": wait},
                    {"Retry-After": str(wait)},
                )
            return self._refuse(
                status.HTTP_401_UNAUTHORIZED,
                _("Unknown or missing integration token."),
                {"WWW-Authenticate": 'Bearer realm="integrations"'},
            )
        if not route.enabled:
            return self._refuse(status.HTTP_403_FORBIDDEN, _("This integration is disabled."))
        if route.kind != self.kind:
            return self._refuse(
                status.HTTP_403_FORBIDDEN,
                _("This token belongs to an integration of kind %(kind)s; post to /api/v1/integrations/%(kind)s/.")
                % {"kind": route.kind},
            )
        wait = over_rate_limit(route)
        if wait is not None:
            return self._refuse(
                status.HTTP_429_TOO_MANY_REQUESTS,
                _("Over this integration's rate of %(rate)s notifications a minute; retry in %(wait)s s.")
                % {"rate": route.rate_limit_per_minute, "wait": wait},
                {"Retry-After": str(wait)},
            )

        limit = settings.INGEST_MAX_BODY_BYTES
        remote = request.META.get("REMOTE_ADDR", "")
        body = _body(request, limit)
        if body is None:
            too_large = _("The body is larger than %(limit)s bytes.") % {"limit": limit}
            rejected_delivery_record(integration_id=route.id, reason=too_large, body=b"", remote_addr=remote)
            return self._refuse(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, too_large)

        try:
            alerts, rejected = read_body(self.kind, body)
        except BodyError as exc:
            rejected_delivery_record(integration_id=route.id, reason=str(exc), body=body, remote_addr=remote)
            return self._refuse(status.HTTP_400_BAD_REQUEST, str(exc))
        result = alerts_ingest(route=route, alerts=alerts)
        if rejected:
            rejected_delivery_record(
                integration_id=route.id, reason=describe_rejections(rejected), body=body, remote_addr=remote
            )
        return _json(
            {
                "accepted": result.accepted,
                "new": result.new,
                "repeated": result.repeated,
                "rejected": [{"index": r.index, "reason": r.reason} for r in rejected],
            }
        )


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
