"""The post-incident review (复盘): its one write (review_save), its starting drafts and its Markdown export.

A review is sections of Markdown (models.ReviewSection), each kept with every version it had; the
whole review carries a version that refuses a stale edit, as an incident does. Reads of what is missing
(the close rule, the awaiting-review list) are selectors (incidents.selectors.review_*).
"""

from collections.abc import Iterable, Mapping
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from incidents import selectors, timeline
from incidents.durations import human_duration
from incidents.models import (
    ActionItem,
    Incident,
    IncidentReview,
    IncidentReviewSection,
    ReviewRevision,
    ReviewSection,
    TimelineEntry,
)
from incidents.services import StaleVersionError, timeline_event


def _clean(text: str) -> str:
    return "\n".join(line.rstrip() for line in str(text).replace("\r\n", "\n").split("\n")).strip()


@transaction.atomic
def review_save(
    *, incident_id: int, by: User | None, expected_version: int | None, sections: Mapping[str, str]
) -> IncidentReview:
    """Write some sections of the incident's review. A stale expected_version (the review's, 0 before
    anything is written) raises StaleVersionError and writes nothing; a section whose text does not change
    is left alone, and a save that changes nothing writes nothing. Each changed section gets a new version
    and a revision row; the review's version goes up by one and a timeline row names the sections."""
    unknown = sorted(set(sections) - set(ReviewSection.values))
    if unknown:
        raise ValidationError(
            {"sections": [_("Unknown review sections: %(keys)s.") % {"keys": ", ".join(map(str, unknown))}]}
        )
    incident = Incident.objects.select_for_update().get(pk=incident_id)
    review = IncidentReview.objects.filter(incident=incident).first() or IncidentReview(incident=incident)
    if expected_version is not None and review.version != expected_version:
        raise StaleVersionError(review.version)
    now = timezone.now()
    current = {section.key: section for section in review.sections.all()} if review.pk else {}
    changed: dict[str, str] = {}
    for key in ReviewSection.values:
        text = _clean(sections[key]) if key in sections else None
        section = current.get(key)
        if text is None or (section.text if section else "") == text:
            continue
        changed[key] = text
    if not changed:
        return review
    review.version += 1
    review.updated_by = by
    review.save()
    revisions: list[ReviewRevision] = []
    for key, text in changed.items():
        section = current.get(key) or IncidentReviewSection(review=review, key=key, version=0)
        section.text, section.version, section.updated_by, section.updated_at = text, section.version + 1, by, now
        section.save()
        revisions.append(ReviewRevision(section=section, version=section.version, text=text, by=by, at=now))
    ReviewRevision.objects.bulk_create(revisions)
    timeline_event(
        incident,
        kind=TimelineEntry.Kind.REVIEW,
        at=now,
        by=by,
        data={"sections": list(changed), "version": review.version},
    ).save()
    return review


def review_versions(*, incident: Incident) -> dict[str, list[ReviewRevision]]:
    """Every version of each written section, oldest first: what the review said, and who wrote it when."""
    history: dict[str, list[ReviewRevision]] = {}
    for revision in ReviewRevision.objects.filter(section__review__incident=incident).select_related("section", "by"):
        history.setdefault(revision.section.key, []).append(revision)
    return history


# -- the starting drafts: what the record already knows, for the author to edit -----------------------


def impact_draft(incident: Incident) -> str:
    """The impact section as the facts give it: users, transactions, funds, availability, duration."""
    lines = [
        _("Affected users: %(count)s") % {"count": f"{incident.affected_users:,}"},
        _("Affected transactions: %(count)s") % {"count": f"{incident.affected_transactions:,}"},
        _("Funds loss: %(amount)s") % {"amount": f"{incident.funds_loss:,.2f}"},
        _("Availability impact: %(share)s %%") % {"share": f"{incident.effective_availability_impact * 100:.1f}"},
    ]
    if incident.recovered_at is not None:
        lines.append(
            _("Duration (occurred to recovered): %(duration)s") % {"duration": human_duration(incident.time_to_recover)}
        )
    if incident.data_or_security_breach:
        lines.append(_("Data or security breach: yes"))
    if incident.regulatory_reportable:
        lines.append(_("Reportable to the regulator: yes"))
    return "\n".join(f"- {line}" for line in lines)


def timeline_draft(incident: Incident, *, alerts: Iterable[tuple[datetime, str]] = ()) -> str:
    """The timeline section from the incident's timeline rows (in the reader's language) and the
    alerts linked to it, given as (received at, what it said) by a layer that may read them."""
    rows = [(entry.at, timeline.describe(entry)) for entry in selectors.incident_timeline(incident=incident)]
    rows += [(at, _("Alert: %(text)s") % {"text": text}) for at, text in alerts]
    rows.sort(key=lambda row: row[0])
    return "\n".join(f"- {timeline.at_text(at)} {text}" for at, text in rows)


def items_draft(incident: Incident) -> str:
    return "\n".join(
        f"- #{item.pk} {item.title} ({item.get_status_display()}, {item.owner.username})"
        for item in ActionItem.objects.filter(incident=incident).select_related("owner").order_by("pk")
    )


def review_drafts(incident: Incident, *, alerts: Iterable[tuple[datetime, str]] = ()) -> dict[str, str]:
    """Drafts for the sections the record can start: impact, timeline, detection, response, root cause, items."""
    drafts = {
        ReviewSection.IMPACT: impact_draft(incident),
        ReviewSection.TIMELINE: timeline_draft(incident, alerts=alerts),
        ReviewSection.DETECTION: _("Detected by %(source)s, %(after)s after it started.")
        % {"source": incident.get_detection_source_display(), "after": human_duration(incident.time_to_detect)},
        ReviewSection.ROOT_CAUSE: incident.cause,
        ReviewSection.RESPONSE: incident.handling,
        ReviewSection.ITEMS: items_draft(incident),
    }
    return {str(key): text for key, text in drafts.items() if text}


# -- export ------------------------------------------------------------------------------------------


def _no_html(text: str) -> str:
    # The sections are Markdown and stay so; raw HTML in them is shown as text, never run by a viewer.
    return text.replace("<", "&lt;")


def review_markdown(incident: Incident) -> str:
    """The review as one Markdown document, headed by the incident, every section in order (the
    unwritten ones say so), in the active language. Markdown is kept; HTML tags are not (shown as text)."""
    texts = selectors.review_texts(incident=incident)
    parts = [
        f"# {_('Review')}: #{incident.pk} {_no_html(incident.title)}",
        f"{_('Level')} {incident.level} · {incident.team.name} · {timeline.at_text(incident.occurred_at)}",
    ]
    for key, label in ReviewSection.choices:
        parts.append(f"## {label}")
        parts.append(_no_html(texts[key]) or f"_{_('Not written.')}_")
    return "\n\n".join(parts) + "\n"
