from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo data set (`load_demo`) and the year of history at scale (`generate_history`).

    It builds on both `incidents` and `stability` and writes through their services, or for the bulk
    paths through their documented bulk loads (incidents.bulk, stability.bulk); nothing imports it.
    No models: nothing of it shows in the admin, so its name needs no translation."""

    name = "demo"
