from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.services import api_token_create


class Command(BaseCommand):
    help = "Create a personal API token for USERNAME and print it alone on the last line (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label for the token, e.g. the script using it.")

    def handle(self, *args, username: str, name: str, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        api_token, token = api_token_create(user=user, name=name)
        self.stderr.write(
            f"Created API token {api_token.prefix}… for {user.username} ({user.effective_role}). "
            "It is shown once; store it now."
        )
        self.stdout.write(token)
