"""The engine's fixtures (tests/engine/conftest.py): counts, records and the stop list are proven by sending."""

from tests.engine.conftest import _fresh_provider_state, make_deliverer, provider  # noqa: F401 (fixtures)
