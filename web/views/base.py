"""What every page view shares: sign-in, the role's capabilities, and answers to htmx requests."""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.views import View

from accounts.permissions import READ_RECORD, WRITE_RECORD, user_can

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class PageView(LoginRequiredMixin, View):
    """A page for signed-in people. Reads need `read_capability`, POSTs `write_capability`
    (accounts.permissions, the same rules as the API)."""

    read_capability: str = READ_RECORD
    write_capability: str = WRITE_RECORD

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        needed = self.read_capability if request.method in SAFE_METHODS else self.write_capability
        if not user_can(request.user, needed):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)
