"""REST framework wiring shared by every app: paging, error shape, and what the API refuses before any
of it reaches the database.

PostgreSQL cannot store some strings (a NUL character, a lone UTF-16 surrogate: text and jsonb refuse
them, UTF-8 cannot encode them) and Python cannot hold some timestamps that PostgreSQL can (past year
9999). Such input is refused here, once for every endpoint, with a 400 naming the field: in bodies by
the parsers, in query strings, URL paths and page forms by StorableInputMiddleware, and timestamps by TimestampField.
"""

import re
from collections.abc import Iterator
from datetime import UTC

import django_filters
from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.http import HttpResponseBadRequest, JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import exceptions, pagination, parsers, serializers
from rest_framework.serializers import as_serializer_error

from incidents.models import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP

# Deeper than any body this API takes (a severity policy is four levels); deep enough to be no limit.
MAX_JSON_DEPTH = 64
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class Pagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def exception_handler(exc, context):
    """DRF's handler, plus services' Django ValidationErrors as 400 keyed by field."""
    # Imported here: rest_framework.views reads DEFAULT_PARSER_CLASSES, which name this module's parsers.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    return drf_exception_handler(exc, context)


# --- strings PostgreSQL cannot store -------------------------------------------------------------


def unstorable_reason(text: str) -> str | None:
    """Why PostgreSQL could not store this text, or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return _("Contains a NUL character (\\u0000), which cannot be stored.")
    return _("Contains a lone surrogate (\\u%(code)04x), which is not a character and cannot be stored.") % {
        "code": ord(found.group())
    }


def _printable(name: str) -> str:
    # The field name goes back in the answer and may itself be what cannot be stored.
    return _UNSTORABLE.sub(lambda found: f"\\u{ord(found.group()):04x}", name)


def _walk(value, *, field: str) -> Iterator[tuple[str, str]]:
    """(field, message) for each problem in a parsed body; iterative, so no depth can overflow the stack."""
    stack = [(value, field, 1)]
    while stack:
        value, field, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            yield field, _("Nested more than %(depth)d levels deep.") % {"depth": MAX_JSON_DEPTH}
            continue
        if isinstance(value, str):
            if reason := unstorable_reason(value):
                yield field, reason
        elif isinstance(value, dict):
            for key, item in value.items():
                if reason := unstorable_reason(key):
                    yield field or _printable(key), _("A key: %(reason)s") % {"reason": reason}
                stack.append((item, field or _printable(key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, field, depth + 1) for item in value)


def refuse_unstorable(data, *, field: str = "") -> None:
    """400 keyed by the top-level field when a body holds a string PostgreSQL cannot store, or nests
    deeper than MAX_JSON_DEPTH."""
    errors: dict[str, list[str]] = {}
    for name, message in _walk(data, field=field):
        messages = errors.setdefault(name or "non_field_errors", [])
        if message not in messages:
            messages.append(message)
    if errors:
        raise exceptions.ValidationError(errors)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing bodies nested too deep to parse and strings that cannot be stored."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(
                _("JSON parse error - nested more than %(depth)d levels deep.") % {"depth": MAX_JSON_DEPTH}
            ) from None
        refuse_unstorable(data)
        return data


def _refuse_unstorable_form(data) -> None:
    refuse_unstorable({key: data.getlist(key) for key in data})


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _refuse_unstorable_form(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        _refuse_unstorable_form(parsed.data)
        return parsed


class StorableInputMiddleware:
    """Every request's query string and URL path values, and the form values posted to a page: a value
    PostgreSQL cannot store gets a 400 naming the parameter, before a view looks anything up with it
    (a slug, a label, a filter, an admin search). API bodies are the parsers' business."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        api = request.path_info.startswith("/api/")
        sources = [(name, [value]) for name, value in view_kwargs.items() if isinstance(value, str)]
        sources += list(request.GET.lists())
        if not api and request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
            sources += list(request.POST.lists())
        errors: dict[str, list[str]] = {}
        for name, values in sources:
            if reason := unstorable_reason(name):
                errors.setdefault(_printable(name), []).append(reason)
            for value in values:
                if reason := unstorable_reason(value):
                    errors.setdefault(_printable(name), []).append(reason)
                    break
        if not errors:
            return None
        if api:
            return JsonResponse(errors, status=400)
        lines = [f"{name}: {' '.join(reasons)}" for name, reasons in errors.items()]
        return HttpResponseBadRequest("\n".join([_("The request was refused:"), *lines]), content_type="text/plain")


# --- timestamps ----------------------------------------------------------------------------------


class TimestampField(serializers.DateTimeField):
    """A DateTimeField for times this tracker records: from EARLIEST_TIMESTAMP (2000) to
    LATEST_TIMESTAMP (2100), so that no stored time is out of Python's range in any reader's zone or
    after any arithmetic (a reminder one week later). A time Python cannot hold is refused as well."""

    default_error_messages = {
        "too_early": gettext_lazy("This time is before the year 2000; check the date."),
        "too_late": gettext_lazy("This time is after the year 2100; check the date."),
    }

    def to_internal_value(self, value):
        moment = super().to_internal_value(value)
        if timezone.is_aware(moment):
            if moment < EARLIEST_TIMESTAMP:
                self.fail("too_early")
            if moment >= LATEST_TIMESTAMP:
                self.fail("too_late")
        return moment

    def to_representation(self, value):
        try:
            return super().to_representation(value)
        except (OverflowError, exceptions.ValidationError):
            # Stored by some other path and out of range in the reader's zone: the same instant in UTC.
            return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class ModelSerializer(serializers.ModelSerializer):
    """DRF's ModelSerializer whose model DateTimeFields are TimestampFields."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: TimestampField,
    }

    def get_fields(self):
        # A declared read-only relation (`owner = SlugRelatedField(read_only=True)`) is null where its
        # foreign key is: say so, so that the schema documents the null the API answers.
        fields = super().get_fields()
        for name, field in fields.items():
            if isinstance(field, serializers.RelatedField) and field.read_only and not field.allow_null:
                try:
                    model_field = self.Meta.model._meta.get_field(field.source or name)
                except (AttributeError, FieldDoesNotExist):
                    continue
                field.allow_null = bool(getattr(model_field, "null", False))
        return fields


class _UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """Any time Python can hold, as UTC: PostgreSQL refuses offsets past ±15:59 that ISO 8601 allows."""

    default_error_messages = {"overflow": gettext_lazy("This time is out of range.")}

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise DjangoValidationError(self.error_messages["overflow"], code="overflow") from None


class TimestampFilter(django_filters.IsoDateTimeFilter):
    """The filter of every time in a query string: wide, but never a time the database cannot compare."""

    field_class = _UtcIsoDateTimeField
