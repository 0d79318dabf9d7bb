"""The provider configuration file: what it accepts, and how it says what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate.providers.config import ConfigError, Policy, load
from imagegate.providers.registry import ProviderRegistry
from imagegate.settings import Settings

GOOD = """
[routing]
policy = "cheapest"
[routing.workspaces.acme]
policy = "fastest"

[breaker]
min_calls = 4
open_s = 5

[providers.builtin]
priority = 1
[providers.builtin.prices.builtin]
draft = 0.001
standard = 0.002
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "imagegate.toml"
    path.write_text(text)
    return path


def test_a_good_file(tmp_path: Path) -> None:
    config = load(write(tmp_path, GOOD))
    assert config.routing.policy is Policy.CHEAPEST
    assert config.policy_for("acme") is Policy.FASTEST
    assert config.policy_for("other") is Policy.CHEAPEST
    assert config.breaker.min_calls == 4
    registry = ProviderRegistry.from_settings(
        Settings(data_dir=tmp_path, config=tmp_path / "imagegate.toml")
    )
    entry = registry.entry("builtin")
    assert entry.price("builtin", "draft") == 0.001
    assert registry.resolve("auto") is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[providers.x]\ntype = 'midjourney'", "unknown type 'midjourney'"),
        ("[providers.openai]\nbase_url = 1", "providers.openai.base_url"),
        ("[providers.openai]\nsecret = 'sk-…'", "providers.openai.secret: Extra inputs"),
        ("[providers.openai]\nrate_limit = 'lots'", "a rate is N/second"),
        ("[routing]\npolicy = 'random'", "routing.policy"),
        ("[providers", "not valid TOML"),
        ("[providers.builtin]\nenabled = false", "no provider is enabled"),
        ("[providers.mine]\ntype = 'builtin'", "the built-in renderer is [providers.builtin]"),
        ("[providers.builtin.prices.builtin]\nvaryregion = 0.1", "varyregion; prices are by"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    settings = Settings(data_dir=tmp_path, config=write(tmp_path, text))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        ProviderRegistry.from_settings(settings)


def test_a_missing_key_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_FOR_TEST", raising=False)
    text = (
        "[providers.openai]\nbase_url = 'http://127.0.0.1:1/v1'\n"
        "api_key_env = 'NO_SUCH_KEY_FOR_TEST'"
    )
    settings = Settings(data_dir=tmp_path, config=write(tmp_path, text))
    with pytest.raises(ConfigError, match="NO_SUCH_KEY_FOR_TEST is not set"):
        ProviderRegistry.from_settings(settings)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "nope.toml")
