"""The post-incident review (复盘) pages: the review on the incident page, its edit page (one Markdown text
per section, the empty ones started from the record), its exports (Markdown and PDF), and the list of
incidents awaiting their review for the review meeting. Writes go through incidents.reviews.review_save;
what is missing is incidents.selectors' (the close rule reads the same)."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.permissions import WRITE_RECORD
from incidents import reviews, selectors, services, timeline
from incidents.models import Incident, IncidentReview, ReviewSection, Team
from web import selectors as web_selectors
from web.views.base import PageView

PAGE_SIZE = 50  # incidents awaiting their review, a page

# What each section asks of its author (shown under its text box).
PROMPTS = {
    ReviewSection.SUMMARY: gettext_lazy("What happened, in a few sentences."),
    ReviewSection.IMPACT: gettext_lazy("Who and what was hit, for how long; started from the facts."),
    ReviewSection.TIMELINE: gettext_lazy("Started from the timeline and the linked alerts."),
    ReviewSection.DETECTION: gettext_lazy("How we found out, and how we could have found out sooner."),
    ReviewSection.RESPONSE: gettext_lazy("What we did to recover, what helped and what slowed us."),
    ReviewSection.ROOT_CAUSE: gettext_lazy("Ask why five times: each answer one line."),
    ReviewSection.WENT_WELL: gettext_lazy("Keep doing."),
    ReviewSection.WENT_BADLY: gettext_lazy("Stop or change."),
    ReviewSection.LESSONS: gettext_lazy("What we learned and will change."),
    ReviewSection.ITEMS: gettext_lazy("The action items agreed (add them on the incident page)."),
}


class ReviewForm(forms.Form):
    """One Markdown text per section, with the review's version the author saw."""

    expected_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)

    def __init__(self, *args, required: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        for key, label in ReviewSection.choices:
            self.fields[key] = forms.CharField(
                label=label,
                required=False,
                strip=False,
                help_text=PROMPTS[key],
                widget=forms.Textarea(
                    attrs={"rows": 6 if key in (ReviewSection.TIMELINE, ReviewSection.ROOT_CAUSE) else 4}
                ),
            )
            self.fields[key].review_required = key in required

    def section_fields(self):
        return [self[key] for key in ReviewSection.values]

    def sections(self) -> dict[str, str]:
        return {key: self.cleaned_data[key] for key in ReviewSection.values}


def _incident_or_404(pk: int) -> Incident:
    return get_object_or_404(Incident.objects.select_related("team", "owner"), pk=pk)


def _version(incident: Incident) -> int:
    return IncidentReview.objects.filter(incident=incident).values_list("version", flat=True).first() or 0


def _sections(incident: Incident) -> list[dict]:
    """Each section in order: its key, its name in the reader's language, its text, whether it is required."""
    texts = selectors.review_texts(incident=incident)
    required = set(selectors.review_required_sections(incident.team))
    return [
        {"key": key, "label": label, "text": texts[key], "required": key in required}
        for key, label in ReviewSection.choices
    ]


def review_section(incident: Incident) -> dict:
    """What the incident page shows of the review: the written sections and the missing required ones."""
    sections = _sections(incident)
    return {
        "review_sections": [section for section in sections if section["text"]],
        "review_missing": timeline.section_names(s["key"] for s in sections if s["required"] and not s["text"]),
    }


def _alerts(incident: Incident) -> list[tuple]:
    """The linked alerts as the timeline draft takes them: (received at, name and summary)."""
    return [
        (alert.received_at, " ".join(filter(None, [alert.alertname or alert.fingerprint, alert.summary])))
        for alert in web_selectors.incident_alerts(incident=incident)
    ]


class ReviewEditView(PageView):
    read_capability = WRITE_RECORD
    template = "web/reviews/edit.html"

    def _render(self, request, incident: Incident, form: ReviewForm, *, status: int = 200):
        context = {"incident": incident, "form": form, "version": form["expected_version"].value()}
        return render(request, self.template, context, status=status)

    def get(self, request, pk: int):
        incident = _incident_or_404(pk)
        texts = selectors.review_texts(incident=incident)
        drafts = reviews.review_drafts(incident, alerts=_alerts(incident))
        initial = {key: texts[key] or drafts.get(key, "") for key in ReviewSection.values}
        form = ReviewForm(
            initial={**initial, "expected_version": _version(incident)},
            required=selectors.review_required_sections(incident.team),
        )
        return self._render(request, incident, form)

    def post(self, request, pk: int):
        incident = _incident_or_404(pk)
        form = ReviewForm(request.POST, required=selectors.review_required_sections(incident.team))
        if not form.is_valid():
            return self._render(request, incident, form, status=400)
        try:
            reviews.review_save(
                incident_id=incident.pk,
                by=request.user,
                expected_version=form.cleaned_data["expected_version"],
                sections=form.sections(),
            )
        except services.StaleVersionError as exc:
            # The typed text stays in the form; the reader compares it with the review as it is now.
            form.add_error(
                None,
                _(
                    "Someone else changed this review while you were writing (now version %(version)s). "
                    "Your text is kept below: open the review in another tab, merge, and save again."
                )
                % {"version": exc.current_version},
            )
            return self._render(request, incident, form, status=409)
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error(None, message)
            return self._render(request, incident, form, status=400)
        messages.success(request, _("Review saved."))
        return redirect(f"{redirect('web:incident-detail', incident.pk).url}#review")


class ReviewVersionsView(PageView):
    """Every version of each section, the newest first: what the review said, who wrote it, when."""

    def get(self, request, pk: int):
        incident = _incident_or_404(pk)
        history = reviews.review_versions(incident=incident)
        sections = [
            {"label": label, "revisions": list(reversed(history[key]))}
            for key, label in ReviewSection.choices
            if key in history
        ]
        return render(request, "web/reviews/versions.html", {"incident": incident, "sections": sections})


class ReviewMarkdownView(PageView):
    def get(self, request, pk: int):
        incident = _incident_or_404(pk)
        response = HttpResponse(reviews.review_markdown(incident), content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="review-{incident.pk}.md"'
        return response


def review_pdf_bytes(incident: Incident) -> bytes:
    """The review as an A4 PDF in the active language (WeasyPrint, the report's CJK font)."""
    from weasyprint import HTML

    html = render_to_string(
        "web/reviews/pdf.html",
        {"incident": incident, "sections": _sections(incident), "generated_at": timezone.now()},
    )
    return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()


class ReviewPdfView(PageView):
    def get(self, request, pk: int):
        incident = _incident_or_404(pk)
        response = HttpResponse(review_pdf_bytes(incident), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="review-{incident.pk}.pdf"'
        return response


class AwaitingReviewView(PageView):
    """Incidents recovered or resolved whose review misses a required section, the longest waiting first."""

    def get(self, request):
        teams = list(Team.objects.order_by("name"))
        team = next((t for t in teams if t.slug == request.GET.get("team")), None)
        awaiting = selectors.incidents_awaiting_review(teams=[team] if team else None)
        page = Paginator(awaiting, PAGE_SIZE).get_page(request.GET.get("page"))
        for incident in selectors.review_gaps(page.object_list):
            incident.missing_names = timeline.section_names(incident.missing_sections)
        context = {"incidents": page.object_list, "page": page, "teams": teams, "team": team}
        return render(request, "web/reviews/awaiting.html", context)
