"""What each role may do. Engineers log and edit incidents; managers read everything and the
reports; administrators do all of that and manage teams, systems and the severity policy."""

from rest_framework import permissions

from accounts.models import Role

READ_RECORD = "read_record"
WRITE_RECORD = "write_record"
READ_REPORTS = "read_reports"
CONFIGURE = "configure"

CAPABILITIES: dict[str, frozenset[str]] = {
    Role.ENGINEER: frozenset({READ_RECORD, WRITE_RECORD}),
    Role.MANAGER: frozenset({READ_RECORD, READ_REPORTS}),
    Role.ADMIN: frozenset({READ_RECORD, WRITE_RECORD, READ_REPORTS, CONFIGURE}),
}


def user_can(user, capability: str) -> bool:
    if not (user and user.is_authenticated and user.is_active):
        return False
    return capability in CAPABILITIES.get(user.effective_role, frozenset())


class _Capability(permissions.BasePermission):
    read_capability: str = READ_RECORD
    write_capability: str = WRITE_RECORD

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        needed = self.read_capability if request.method in permissions.SAFE_METHODS else self.write_capability
        return user_can(request.user, needed)


class RecordAccess(_Capability):
    """Read: every role. Write: engineers and administrators."""


class ConfigurationAccess(_Capability):
    """Read: every role. Write: administrators."""

    write_capability = CONFIGURE


class ReportAccess(_Capability):
    """Managers and administrators, read only."""

    read_capability = READ_REPORTS
    write_capability = READ_REPORTS


class PreviewAccess(_Capability):
    """Every role that reads the record, also for POSTs that only compute and save nothing."""

    write_capability = READ_RECORD
