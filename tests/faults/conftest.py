"""The pages' fixtures, for the fault tests that go through pages."""

from tests.web.conftest import administrator, engineer, manager, world  # noqa: F401
