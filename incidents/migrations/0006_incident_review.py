"""The post-incident review (复盘) becomes sections (IncidentReview, IncidentReviewSection, ReviewRevision);
each team names the sections required to close.

An incident's old one-text review becomes the `summary` section (version 1) of its review, so closed
incidents keep their review and the teams' default required sections are the new rule from now on.
Reversed, the sections come back as one text, headed by their names.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import incidents.models


def reviews_to_sections(apps, schema_editor):
    """Each written review -> a review whose `summary` section is that text (version 1, its revision)."""
    Incident = apps.get_model("incidents", "Incident")
    IncidentReview = apps.get_model("incidents", "IncidentReview")
    Section = apps.get_model("incidents", "IncidentReviewSection")
    Revision = apps.get_model("incidents", "ReviewRevision")
    written = list(
        Incident.objects.exclude(review="").values_list("pk", "review", "updated_at", "closed_at").order_by("pk")
    )
    written = [(pk, text.strip(), updated_at, closed_at) for pk, text, updated_at, closed_at in written if text.strip()]
    for start in range(0, len(written), 1000):
        chunk = written[start : start + 1000]
        reviews = IncidentReview.objects.bulk_create(IncidentReview(incident_id=pk, version=1) for pk, *_ in chunk)
        sections = Section.objects.bulk_create(
            Section(review=review, key="summary", text=text, version=1, updated_at=closed_at or updated_at)
            for review, (_pk, text, updated_at, closed_at) in zip(reviews, chunk, strict=True)
        )
        Revision.objects.bulk_create(
            Revision(section=section, version=1, text=section.text, at=section.updated_at) for section in sections
        )


def sections_to_reviews(apps, schema_editor):
    Incident = apps.get_model("incidents", "Incident")
    Section = apps.get_model("incidents", "IncidentReviewSection")
    texts: dict[int, list[str]] = {}
    for incident_id, key, text in (
        Section.objects.exclude(text="").order_by("id").values_list("review__incident_id", "key", "text")
    ):
        texts.setdefault(incident_id, []).append(text if key == "summary" else f"## {key}\n\n{text}")
    for incident_id, parts in texts.items():
        Incident.objects.filter(pk=incident_id).update(review="\n\n".join(parts))


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0005_structured_timeline_roles"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="team",
            name="review_required_sections",
            field=models.JSONField(
                blank=True,
                default=incidents.models.default_review_required_sections,
                help_text="The review sections that must be written before an incident of this team closes.",
                validators=[incidents.models.validate_review_sections],
                verbose_name="required review sections",
            ),
        ),
        migrations.AlterField(
            model_name="timelineentry",
            name="kind",
            field=models.CharField(
                choices=[
                    ("created", "Created"),
                    ("change", "Field changed"),
                    ("status", "Status changed"),
                    ("severity", "Severity changed"),
                    ("note", "Note"),
                    ("action_item", "Action item"),
                    ("responded", "Responded"),
                    ("update", "Update"),
                    ("review", "Review"),
                ],
                max_length=12,
                verbose_name="kind",
            ),
        ),
        migrations.CreateModel(
            name="IncidentReview",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "version",
                    models.PositiveIntegerField(
                        default=0,
                        help_text="Incremented on every change; a stale version is refused.",
                        verbose_name="version",
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created at")),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated at")),
                (
                    "incident",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="review",
                        to="incidents.incident",
                        verbose_name="incident",
                    ),
                ),
                (
                    "updated_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="updated by",
                    ),
                ),
            ],
            options={
                "verbose_name": "review",
                "verbose_name_plural": "reviews",
            },
        ),
        migrations.CreateModel(
            name="IncidentReviewSection",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "key",
                    models.CharField(
                        choices=[
                            ("summary", "Summary"),
                            ("impact", "Impact"),
                            ("timeline", "Timeline"),
                            ("detection", "Detection"),
                            ("response", "Response"),
                            ("root_cause", "Root cause (5 whys)"),
                            ("went_well", "What went well"),
                            ("went_badly", "What went badly"),
                            ("lessons", "Lessons"),
                            ("items", "Action items"),
                        ],
                        max_length=20,
                        verbose_name="section",
                    ),
                ),
                ("text", models.TextField(blank=True, help_text="Markdown.", verbose_name="text")),
                ("version", models.PositiveIntegerField(default=1, verbose_name="version")),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now, verbose_name="updated at")),
                (
                    "review",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="sections",
                        to="incidents.incidentreview",
                        verbose_name="review",
                    ),
                ),
                (
                    "updated_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="updated by",
                    ),
                ),
            ],
            options={
                "verbose_name": "review section",
                "verbose_name_plural": "review sections",
                "ordering": ["review", "id"],
            },
        ),
        migrations.CreateModel(
            name="ReviewRevision",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("version", models.PositiveIntegerField(verbose_name="version")),
                ("text", models.TextField(blank=True, verbose_name="text")),
                ("at", models.DateTimeField(verbose_name="at")),
                (
                    "by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="author",
                    ),
                ),
                (
                    "section",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="revisions",
                        to="incidents.incidentreviewsection",
                        verbose_name="review section",
                    ),
                ),
            ],
            options={
                "verbose_name": "review revision",
                "verbose_name_plural": "review revisions",
                "ordering": ["section", "version"],
            },
        ),
        migrations.AddConstraint(
            model_name="incidentreviewsection",
            constraint=models.UniqueConstraint(fields=("review", "key"), name="review_section_once"),
        ),
        migrations.AddConstraint(
            model_name="reviewrevision",
            constraint=models.UniqueConstraint(fields=("section", "version"), name="review_revision_once"),
        ),
        migrations.RunPython(reviews_to_sections, sections_to_reviews),
        migrations.RemoveField(
            model_name="incident",
            name="review",
        ),
    ]
