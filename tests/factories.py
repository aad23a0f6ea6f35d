from datetime import timedelta

import factory
from django.utils import timezone

from accounts.models import Role, User
from incidents import reviews, services
from incidents.models import ActionItem, DetectionSource, Incident, System, Team, Tier


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    role = Role.ENGINEER
    password = factory.django.Password("pw")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")


class SystemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = System
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"system-{n}")
    name = factory.LazyAttribute(lambda o: o.code.title())
    tier = Tier.P2
    team = factory.SubFactory(TeamFactory)


class IncidentFactory(factory.Factory):
    """Incidents are made through the service, so they are classified and timelined as in life."""

    class Meta:
        model = Incident

    by = None
    title = factory.Sequence(lambda n: f"Incident {n}")
    systems = factory.LazyFunction(lambda: [SystemFactory()])
    occurred_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=2))
    detected_at = factory.LazyAttribute(lambda o: o.occurred_at)
    detection_source = DetectionSource.MONITORING

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return services.incident_create(**kwargs)

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        raise NotImplementedError("incidents are only created through incidents.services")


class ActionItemFactory(factory.django.DjangoModelFactory):
    """An open item due in a week. Written directly (no timeline row): for tests of what reads items."""

    class Meta:
        model = ActionItem

    incident = factory.LazyFunction(lambda: IncidentFactory())
    team = factory.LazyAttribute(lambda item: item.incident.team if item.incident else item.drill.team)
    drill = None
    source = factory.LazyAttribute(lambda item: "incident" if item.incident else "drill")
    title = factory.Sequence(lambda n: f"Action item {n}")
    owner = factory.SubFactory(UserFactory)
    due_at = factory.LazyFunction(lambda: (timezone.now() + timedelta(days=7)).replace(microsecond=0))


REVIEW = {"summary": "Review.", "impact": "Impact.", "root_cause": "Cause.", "lessons": "Lessons."}


def write_review(incident: Incident, *, by: User | None = None, **texts: str):
    """The sections a team requires by default (incidents.models.DEFAULT_REVIEW_REQUIRED_SECTIONS), or `texts`."""
    return reviews.review_save(incident_id=incident.pk, by=by, expected_version=None, sections={**REVIEW, **texts})
