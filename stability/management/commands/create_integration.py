from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from incidents.models import System, Team
from stability.models import Integration
from stability.services import integration_create


class Command(BaseCommand):
    help = "Create an integration for an alerting system and print its token alone on the last line (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("--kind", required=True, choices=Integration.Kind.values)
        parser.add_argument("--name", required=True)
        parser.add_argument("--team", help="Slug of the team for alerts whose labels name none.")
        parser.add_argument("--system", help="Code of the system for alerts whose labels name none.")

    def handle(self, *args, kind: str, name: str, team: str | None, system: str | None, **options):
        try:
            default_team = Team.objects.get(slug=team) if team else None
            default_system = System.objects.get(code=system) if system else None
        except Team.DoesNotExist:
            raise CommandError(f"No team with slug {team!r}.") from None
        except System.DoesNotExist:
            raise CommandError(f"No system with code {system!r}.") from None
        try:
            integration, token = integration_create(
                kind=kind, name=name, default_team=default_team, default_system=default_system
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stderr.write(
            f"Created {integration.get_kind_display()} integration {integration.name!r}. Point it at "
            f"/api/v1/integrations/{kind}/ with the header 'Authorization: Bearer <token>'. "
            "The token is shown once; store it now."
        )
        self.stdout.write(token)
