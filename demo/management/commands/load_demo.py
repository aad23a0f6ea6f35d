import json
import random
from collections import Counter
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from demo import dataset
from demo import service_levels as demo_service_levels
from incidents import drills, periods, reviews, services
from incidents.models import ActionItem, Incident, Level, Status, System, Team
from incidents.services import ItemTransition
from stability.bulk import alert_follow_up_activities_bulk_load, alert_occurrences_bulk_load
from stability.models import AlertOccurrence, Integration
from stability.services import integration_create

ItemStatus = ActionItem.Status


class Command(BaseCommand):
    help = (
        "Load the demo data set: users (password demo-password), four teams, twelve systems, about "
        "36 incidents over the last four months and their closed-loop items, and about 690 alerts over the "
        "last 100 days. Does nothing when the demo is already loaded."
    )

    def handle(self, *args, **options):
        with transaction.atomic():
            if Incident.objects.filter(team__slug=dataset.TEAMS[0].slug).exists():
                self.stdout.write("Demo data already loaded.")
                return
            users, kept = self._users()
            teams, new_teams = self._teams(users)
            systems, new_systems = self._systems(teams)
            self.stdout.write(
                f"Created {new_teams} teams, {new_systems} systems, {len(dataset.USERS) - len(kept)} users"
            )
            if kept:
                self.stdout.write(f"Kept existing users unchanged: {', '.join(kept)}")
            ids = self._incidents(users, teams, systems)
            drill_count, other_items = self._drills(users, teams, systems)
            alerts = self._alerts(users, teams, systems)
            service_level_days = demo_service_levels.load(systems)

        levels = Counter(Incident.objects.filter(pk__in=ids).values_list("level", flat=True))
        counts = ", ".join(f"{level}: {levels[level]}" for level in Level.values)
        self.stdout.write(f"Created {len(ids)} incidents ({counts})")
        statuses = Counter(ActionItem.objects.filter(incident__in=ids).values_list("status", flat=True))
        self.stdout.write(
            f"Created {sum(statuses.values())} action items ("
            + ", ".join(f"{status}: {statuses[status]}" for status in ItemStatus.values)
            + ")"
        )
        self.stdout.write(f"Created {drill_count} drills and {other_items} items of drills, meetings and governance")
        self.stdout.write(
            f"Created {alerts['alerts']} alerts over {dataset.ALERT_DAYS} days ({alerts['followed_up']} followed up)"
        )
        self.stdout.write(
            f"Created {len(demo_service_levels.INDICATORS)} service level indicators with {service_level_days} "
            "daily values (docs/service-levels.md)"
        )
        logins = ", ".join(f"{username} ({users[username].effective_role})" for username in dataset.LOGINS)
        self.stdout.write(self.style.SUCCESS(f'Demo loaded. Log in as {logins}; password "{dataset.PASSWORD}".'))

    # -- reference data -----------------------------------------------------------------------

    def _users(self) -> tuple[dict[str, User], list[str]]:
        users, kept = {}, []
        for spec in dataset.USERS:
            user, created = User.objects.get_or_create(
                username=spec.username,
                defaults={
                    "first_name": spec.first_name,
                    "last_name": spec.last_name,
                    "email": f"{spec.username}@example.com",
                    "role": spec.role,
                    "is_staff": spec.superuser,
                    "is_superuser": spec.superuser,
                },
            )
            if created:
                user.set_password(dataset.PASSWORD)
                user.save(update_fields=["password"])
            else:
                kept.append(spec.username)
            users[spec.username] = user
        return users, kept

    def _teams(self, users: dict[str, User]) -> tuple[dict[str, Team], int]:
        """The demo's teams through incidents.services; a team already there keeps its people and gains the
        demo's."""
        teams, created_count = {}, 0
        for spec in dataset.TEAMS:
            managers = [users[username] for username in spec.managers]
            members = [users[username] for username in spec.members]
            team = Team.objects.filter(slug=spec.slug).first()
            if team is None:
                team = services.team_create(name=spec.name, slug=spec.slug, managers=managers, members=members)
                created_count += 1
            else:
                changes = {"managers": {*team.managers.all(), *managers}, "members": {*team.members.all(), *members}}
                team = services.team_update(team_id=team.pk, changes=changes)
            teams[spec.slug] = team
        return teams, created_count

    def _systems(self, teams: dict[str, Team]) -> tuple[dict[str, System], int]:
        """The demo's systems through incidents.services; a system already there is kept as it is."""
        systems, created_count = {}, 0
        for spec in dataset.SYSTEMS:
            system = System.objects.filter(code=spec.code).first()
            if system is None:
                system = services.system_create(
                    code=spec.code,
                    name=spec.name,
                    tier=spec.tier,
                    team=teams[spec.team],
                    availability_target=Decimal(spec.availability_target),
                    description=spec.description,
                )
                created_count += 1
            systems[spec.code] = system
        return systems, created_count

    # -- alerts -------------------------------------------------------------------------------

    def _alerts(self, users: dict[str, User], teams: dict[str, Team], systems: dict[str, System]) -> Counter:
        """dataset.ALERT_RULES over the last dataset.ALERT_DAYS days: one Alertmanager integration per
        team; each occurrence resolved by the source a few minutes later, followed up (acknowledged, with
        the activity a person's acknowledgement writes) as the team's habit has it.

        Loaded in bulk (stability.bulk), as generate_history does: stability.services.alerts_follow_up
        stamps its follow-ups with the current time, and these happened over the last 100 days."""
        now = timezone.now().replace(microsecond=0)
        rng = random.Random(dataset.SEED + 1)
        integrations = {
            slug: integration_create(kind="alertmanager", name=f"Alertmanager {team.name}", default_team=team)[0]
            for slug, team in teams.items()
        }
        counts: Counter = Counter()
        rows = []
        for rule in dataset.ALERT_RULES:
            system = systems[rule.system]
            moments = sorted(
                now - timedelta(seconds=rng.randrange(600, dataset.ALERT_DAYS * 86400))
                for _ in range(round(rule.per_day * dataset.ALERT_DAYS))
            )
            for n, received in enumerate(moments):
                integration = integrations[system.team.slug]
                row = _alert_row(
                    rule, n, received, rng=rng, now=now, users=users, system=system, integration=integration
                )
                rows.append(row)
                counts["alerts"] += 1
                counts["followed_up"] += row["followed_up_at"] is not None
        alert_occurrences_bulk_load(rows=rows, total=len(rows))
        alert_follow_up_activities_bulk_load(integration_ids=[integration.pk for integration in integrations.values()])
        return counts

    # -- incidents ----------------------------------------------------------------------------

    def _incidents(self, users: dict[str, User], teams: dict[str, Team], systems: dict[str, System]) -> list[int]:
        now = timezone.now().replace(microsecond=0)
        rng = random.Random(dataset.SEED)
        members = {spec.slug: spec.members for spec in dataset.TEAMS}
        system_teams = {spec.code: spec.team for spec in dataset.SYSTEMS}
        ids = []
        for template in dataset.INCIDENTS:
            times = self._times(template, rng, now)
            team_slug = system_teams[template.systems[0]]
            owner = users[template.owner or rng.choice(members[team_slug])]
            incident = self._incident(template, times, owner=owner, team=teams[team_slug], systems=systems)
            self._story(incident, template, times, owner=owner, manager=users["manager"], now=now)
            for spec in template.items:
                origin = {"incident_id": incident.pk}
                self._item(origin, spec, by=owner, users=users, occurred=times["occurred_at"], now=now)
            self._close_loop(incident, template, times, owner=owner, manager=users["manager"], now=now)
            ids.append(incident.pk)
        return ids

    def _incident(
        self,
        template: dataset.DemoIncident,
        times: dict[str, datetime | None],
        *,
        owner: User,
        team: Team,
        systems: dict[str, System],
    ) -> Incident:
        """The incident as logged through incidents.services, its texts telling the local times."""
        local = {
            name.removesuffix("_at"): timezone.localtime(value) if value else None for name, value in times.items()
        }
        incident = services.incident_create(
            by=owner,
            title=template.title,
            systems=[systems[code] for code in template.systems],
            team=team,
            owner=owner,
            detection_source=template.source,
            **times,
            affected_users=template.users,
            affected_transactions=template.transactions,
            funds_loss=Decimal(template.funds_loss),
            regulatory_reportable=template.regulatory_reportable,
            availability_impact=Decimal(template.availability_impact) if template.availability_impact else None,
            cause_category=template.cause_category,
            summary=template.summary.format(**local),
            cause=template.cause.format(**local),
            handling=template.handling.format(**local),
        )
        if incident.classified_level != template.level:
            self.stderr.write(
                f"Note: {template.title!r} classified {incident.classified_level}, not {template.level}: "
                "the current severity policy differs from the default one."
            )
        return incident

    def _story(
        self,
        incident: Incident,
        template: dataset.DemoIncident,
        times: dict[str, datetime | None],
        *,
        owner: User,
        manager: User,
        now: datetime,
    ) -> None:
        """The template's timeline notes, each prefixed with its local time, and its level override."""
        end = times["resolved_at"] or times["recovered_at"] or now
        for note in template.notes:
            at = min(times["occurred_at"] + timedelta(minutes=note.after), end, now)
            services.timeline_note_add(
                incident_id=incident.pk, by=owner, text=f"{timezone.localtime(at):%H:%M} {note.text}", at=at
            )
        if template.override:
            level, reason = template.override
            services.severity_override_set(incident_id=incident.pk, by=manager, level=level, reason=reason)

    def _close_loop(
        self,
        incident: Incident,
        template: dataset.DemoIncident,
        times: dict[str, datetime | None],
        *,
        owner: User,
        manager: User,
        now: datetime,
    ) -> None:
        """The review, then the close, of a resolved incident whose template says so (or, by default, one
        older than CLOSE_AFTER_DAYS whose items are all verified or waived)."""
        close = template.close
        if close is None:
            close = now - times["occurred_at"] > timedelta(days=dataset.CLOSE_AFTER_DAYS) and all(
                spec.status in ActionItem.FINAL_STATUSES for spec in template.items
            )
        # Status as the services left it after the items' steps.
        close = close and incident.status == Status.RESOLVED
        if template.review or close:
            reviews.review_save(
                incident_id=incident.pk, by=owner, expected_version=None, sections=_review(incident, template)
            )
        if close:
            services.incident_transition(incident_id=incident.pk, by=manager, action="close")

    def _drills(self, users: dict[str, User], teams: dict[str, Team], systems: dict[str, System]) -> tuple[int, int]:
        """The drills (one held last quarter with a finding turned into an item, one held lately, one
        planned next month) and the items of review meetings and governance work, through the services."""
        now = timezone.now().replace(microsecond=0)
        local = timezone.localtime(now)
        this_quarter = periods.containing("quarter", now)
        items = 0
        for spec in dataset.DRILLS:
            if spec.when == "last_quarter":
                planned = this_quarter.previous().start + timedelta(days=40, hours=14)
            elif spec.when == "days_ago":
                planned = datetime.combine(local.date() - timedelta(days=spec.days), time(22), local.tzinfo)
            else:
                planned = datetime.combine(local.date() + timedelta(days=30), time(22), local.tzinfo)
            drill = drills.drill_create(
                by=users["engineer"],
                team=teams[spec.team],
                title=spec.title,
                scenario=spec.scenario,
                systems=[systems[code] for code in spec.systems],
                planned_at=planned,
            )
            if spec.result:
                drills.drill_hold(
                    drill_id=drill.pk,
                    held_at=planned + timedelta(minutes=30),
                    result=spec.result,
                    switch_over_seconds=spec.switch_over_seconds,
                    findings=spec.findings,
                )
            for item in spec.items:
                origin = {"source": ActionItem.Source.DRILL, "drill_id": drill.pk}
                self._item(origin, item, by=users["engineer"], users=users, occurred=now, now=now)
                items += 1
        for other in dataset.OTHER_ITEMS:
            origin = {"source": other.source, "source_note": other.note, "team": teams[other.team]}
            self._item(origin, other.item, by=users["manager"], users=users, occurred=now, now=now)
            items += 1
        return len(dataset.DRILLS), items

    def _item(
        self, origin: dict, spec: dataset.DemoItem, *, by: User, users: dict[str, User], occurred, now: datetime
    ) -> None:
        """One item through the services: created (of an incident, a drill, a meeting or governance work as
        `origin` says), then taken to its status by its steps, dated in the past (never later than now)."""
        local = timezone.localtime(occurred)

        def day(days: int, clock: str) -> datetime:
            return datetime.combine(local.date() + timedelta(days=days), time.fromisoformat(clock), local.tzinfo)

        owner = users[spec.owner]
        verifier = users[spec.verifier] if spec.verifier else None
        item = services.action_item_create(
            **origin,
            by=by,
            title=spec.title,
            owner=owner,
            due_at=day(spec.due, dataset.DUE_CLOCK),
            kind=spec.kind,
            priority=spec.priority,
            verifier=verifier,
            acceptance_criteria=spec.acceptance,
            ticket_url=spec.ticket,
        )

        def step(action: str, who: User, **options) -> None:
            services.action_item_transition(item_id=item.pk, by=who, action=action, **options)

        if spec.status == ItemStatus.IN_PROGRESS:
            step(ItemTransition.START, owner, at=min(day(1, "10:00"), now))
        elif spec.status in (ItemStatus.DONE, ItemStatus.VERIFIED):
            done = min(day(spec.done if spec.done is not None else spec.due - 1, dataset.DONE_CLOCK), now)
            step(ItemTransition.COMPLETE, owner, at=done)
            if spec.status == ItemStatus.VERIFIED:
                step(ItemTransition.VERIFY, verifier or users["manager"], at=min(done + timedelta(days=1), now))
        elif spec.status == ItemStatus.WAIVED:
            step(ItemTransition.WAIVE, users["manager"], reason=spec.waive_reason)

    def _times(self, template: dataset.DemoIncident, rng: random.Random, now: datetime) -> dict[str, datetime | None]:
        """The five timestamps of a template, anchored to now; none lies in the future."""
        if template.minutes_ago is not None:
            occurred = now - timedelta(minutes=template.minutes_ago)
        else:
            days, jitter = template.days_ago, 0
            if template.jitter and days >= dataset.JITTER_AFTER_DAYS:
                days += rng.randint(-2, 2)
                jitter = rng.randint(-12, 12)
            local_now = timezone.localtime(now)
            day = local_now.date() - timedelta(days=days)
            occurred = datetime.combine(day, time.fromisoformat(template.clock), tzinfo=local_now.tzinfo)
            occurred += timedelta(minutes=jitter)
        while True:
            times = _timestamps(template, occurred)
            if max(value for value in times.values() if value) <= now:
                return times
            occurred -= timedelta(days=1)


def _alert_row(
    rule: dataset.DemoAlertRule,
    n: int,
    received: datetime,
    *,
    rng: random.Random,
    now: datetime,
    users: dict[str, User],
    system: System,
    integration: Integration,
) -> dict:
    """The n-th occurrence of `rule`, as a row for stability.bulk, received through the integration of the
    system's team: resolved by the source unless recent, followed up by a member as the team's habit has it."""
    slug = system.team.slug
    in_time_share, late_share = dataset.FOLLOW_UP_HABITS[slug]
    recent = now - timedelta(hours=dataset.RECENT_UNFOLLOWED_HOURS)
    starts = received - timedelta(seconds=rng.randrange(30, 90))
    ends = received + timedelta(seconds=rng.randrange(120, 1800))
    draw = rng.random()
    if received >= recent:
        followed = None
    elif draw < in_time_share:
        followed = received + timedelta(seconds=rng.randrange(20, 300))
    else:
        late = draw < in_time_share + late_share
        followed = received + timedelta(seconds=rng.randrange(301, 3600)) if late else None
    resolved = ends if ends <= now and received < recent else None
    members = next(spec.members for spec in dataset.TEAMS if spec.slug == slug)
    by = users[rng.choice(members)].pk if followed else None
    labels = {"alertname": rule.alertname, "severity": rule.severity, "system": rule.system}
    return {
        "integration": integration.pk,
        "fingerprint": f"demo-{rule.system}-{rule.alertname}-{n}",
        "starts_at": starts,
        "status": AlertOccurrence.Status.RESOLVED if resolved else AlertOccurrence.Status.FIRING,
        "alertname": rule.alertname,
        "severity": rule.severity,
        "summary": rule.summary,
        "labels": json.dumps(labels),
        "annotations": json.dumps({"summary": rule.summary}),
        "generator_url": "",
        "team": system.team_id,
        "system": system.pk,
        "received_at": received,
        "last_received_at": received,
        "notifications": 1,
        "excluded": AlertOccurrence.Exclusion.NONE,
        "ends_at": resolved,
        "resolved_at": resolved,
        "resolved_by": None,
        "acknowledged_at": followed,
        "acknowledged_by": by,
        "followed_up_at": followed,
        "followed_up_by": by,
        "incident": None,
        "changed_at": max(t for t in (received, followed, resolved) if t is not None),
        "receipt_started": False,
    }


def _timestamps(template: dataset.DemoIncident, occurred: datetime) -> dict[str, datetime | None]:
    detected = occurred + timedelta(minutes=template.detect)
    recovered = occurred + timedelta(minutes=template.recover) if template.recover is not None else None
    resolved = recovered + timedelta(minutes=template.resolve) if recovered and template.resolve is not None else None
    return {
        "occurred_at": occurred,
        "detected_at": detected,
        "responded_at": detected + timedelta(minutes=template.respond),
        "recovered_at": recovered,
        "resolved_at": resolved,
    }


def _review(incident: Incident, template: dataset.DemoIncident) -> dict[str, str]:
    """A review (复盘) made from the record, its summary the template's own when it writes one: the
    sections the teams require by default, and the response."""
    follow_ups = "；".join(spec.title for spec in template.items) or "无 / none"
    return {
        "summary": template.review or f"原因 / Cause: {incident.cause}\n处理 / Handling: {incident.handling}",
        "impact": reviews.impact_draft(incident),
        "response": incident.handling,
        "root_cause": incident.cause or "–",
        "lessons": f"改进 / Follow-ups: {follow_ups}",
    }
