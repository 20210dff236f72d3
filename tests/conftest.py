"""Fixtures every layer shares."""

from __future__ import annotations

import pytest

from microbank.platform.auth import generate_keypair


@pytest.fixture(scope="session")
def keypair() -> tuple[str, str]:
    """An Ed25519 pair (private PEM, public PEM) for the whole run."""
    return generate_keypair()
