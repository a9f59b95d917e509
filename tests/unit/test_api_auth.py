"""The API token: generated once and kept private, compared exactly; loopback decides if reads need it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from coinfleet.api.auth import TokenCheck, Unauthorized, is_loopback, resolve_token
from coinfleet.config import Settings


def test_a_token_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", api_token=None)
    first = resolve_token(settings)
    assert first.generated and first.path is not None
    assert len(first.value) >= 40
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    again = resolve_token(settings)
    assert (again.value, again.generated) == (first.value, False)


def test_the_environment_token_wins(tmp_path: Path) -> None:
    token = resolve_token(Settings(home=tmp_path, api_token=SecretStr("from-env")))
    assert (token.value, token.generated, token.path) == ("from-env", False, None)
    assert not (tmp_path / "api-token").exists()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("127.0.0.2", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("example.org", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_only_the_exact_token_passes() -> None:
    check = TokenCheck(token="s3cret", reads_need_token=False)
    check.require("s3cret")
    for wrong in (None, "", "s3cre", "s3cret ", "S3CRET"):
        assert not check.matches(wrong)
        with pytest.raises(Unauthorized):
            check.require(wrong)
