"""Fixtures of the Triton tests (defined in triton_helpers.py, which the tests also import:
a uniquely named module, because `conftest` is ambiguous when several test folders have one)."""

from triton_helpers import (  # noqa: F401
    mock_server,
    no_generate_server,
    pytest_terminal_summary,
    triton_server,
)
