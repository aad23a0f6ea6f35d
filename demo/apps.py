from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DemoConfig(AppConfig):
    """The demo data set (`load_demo`) and the year of history at scale (`generate_history`).

    It builds on both `incidents` and `stability` and writes through their services (or, for the bulk
    paths, through their documented bulk-load functions); nothing imports it back."""

    name = "demo"
    verbose_name = _("Demo data")
