"""Each adapter's typed ``options``: what each model takes, and how it refuses the rest
(a quoted boolean, a quoted number, a misspelt option) naming provider and field."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from imagegate.providers import a1111, bfl, comfyui, diffusers, fal, openai, replicate, stability
from imagegate.providers.config import ConfigError
from imagegate.providers.http import ProviderConfig
from imagegate.providers.options import AdapterOptions, HttpOptions
from imagegate.providers.registry import ProviderRegistry
from imagegate.settings import Settings


def refused(model: type[AdapterOptions], options: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        model.of("mine", options)
    return caught.value.detail


def test_every_network_adapter_takes_max_connections() -> None:
    for module in (openai, stability, replicate, fal, bfl, comfyui, a1111):
        assert issubclass(module.Options, HttpOptions)
        assert module.Options.of("mine", {}).max_connections == 1000
        assert module.Options.of("mine", {"max_connections": 8}).max_connections == 8
        assert "options.max_connections" in refused(module.Options, {"max_connections": 0})
        assert "options.max_connections" in refused(module.Options, {"max_connections": "8"})


@pytest.mark.parametrize(
    ("module", "flag"),
    [(fal, "safety_checker"), (comfyui, "websocket"), (diffusers, "local_files_only")],
)
def test_a_quoted_boolean_is_refused_not_read_as_true(module: Any, flag: str) -> None:
    base = {"model": "/srv/model"} if module is diffusers else {}
    message = refused(module.Options, {**base, flag: "false"})
    assert message.startswith(f"providers.mine.options.{flag}: Input should be a valid boolean")
    assert "got 'false'" in message and "without quotes" in message
    assert getattr(module.Options.of("mine", {**base, flag: False}), flag) is False


@pytest.mark.parametrize(
    "module", [openai, stability, replicate, fal, bfl, comfyui, a1111, diffusers]
)
def test_a_misspelt_option_is_refused_with_the_known_ones(module: Any) -> None:
    base = {"model": "/srv/model"} if module is diffusers else {}
    message = refused(module.Options, {**base, "max_imgaes": 2})
    assert message.startswith("providers.mine.options.max_imgaes: unknown option (known: ")
    assert ", ".join(sorted(module.Options.model_fields)) in message


def test_openai() -> None:
    options = openai.Options.of("o", {"response_format": "url", "quality": {"draft": "low"}})
    assert (options.response_format, options.quality) == ("url", {"draft": "low"})
    assert "options.response_format" in refused(openai.Options, {"response_format": "png"})
    assert "options.quality.preview" in refused(openai.Options, {"quality": {"preview": "low"}})


def test_stability_checks_the_upscaler_at_start_up() -> None:
    assert stability.Options.of("s", {}).upscaler == "fast"
    assert stability.Options.of("s", {"upscaler": "creative"}).upscaler == "creative"
    assert "options.upscaler" in refused(stability.Options, {"upscaler": "magic"})


def test_replicate() -> None:
    options = replicate.Options.of(
        "r", {"prefer_wait_s": 0, "price_per_second": 1, "input": {"go_fast": True}}
    )
    assert options.prefer_wait_s == 0 and options.input == {"go_fast": True}
    assert options.price_per_second == 1.0  # an integer is a fine float
    assert options.upscale_model == replicate.UPSCALER
    assert "options.prefer_wait_s" in refused(replicate.Options, {"prefer_wait_s": "2"})
    assert "options.prefer_wait_s" in refused(replicate.Options, {"prefer_wait_s": 2.5})
    assert "options.prefer_wait_s" in refused(replicate.Options, {"prefer_wait_s": 61})
    assert "options.price_per_second" in refused(replicate.Options, {"price_per_second": -1})
    assert "options.input" in refused(replicate.Options, {"input": "go_fast"})


def test_fal() -> None:
    assert fal.Options.of("f", {}).priority is None
    assert fal.Options.of("f", {"priority": "low"}).priority == "low"
    assert "options.priority" in refused(fal.Options, {"priority": "urgent"})


def test_bfl() -> None:
    assert bfl.Options.of("b", {}).safety_tolerance == 2
    assert "options.safety_tolerance" in refused(bfl.Options, {"safety_tolerance": 7})
    assert "options.safety_tolerance" in refused(bfl.Options, {"safety_tolerance": True})


def test_comfyui() -> None:
    options = comfyui.Options.of("c", {"steps": 20, "nodes": {"save": "9"}})
    assert (options.steps, options.draft_steps, options.nodes) == (20, None, {"save": "9"})
    assert "options.steps" in refused(comfyui.Options, {"steps": "20"})
    assert "options.max_images" in refused(comfyui.Options, {"max_images": 0})
    message = refused(comfyui.Options, {"moderation_exceptions": "(unclosed"})
    assert "options.moderation_exceptions" in message and "regular expression" in message


def test_a1111() -> None:
    options = a1111.Options.of("a", {"payload": {"steps": 25}, "max_images": 2})
    assert (options.payload, options.max_images, options.upscaler) == (
        {"steps": 25}, 2, a1111.DEFAULT_UPSCALER,
    )  # fmt: skip
    assert "options.max_images" in refused(a1111.Options, {"max_images": "8"})


def test_diffusers() -> None:
    assert "options.model: Field required" in refused(diffusers.Options, {})
    options = diffusers.Options.of("d", {"model": "/m", "device": "cuda:1", "guidance_scale": 7})
    assert (options.device, options.guidance_scale, options.dtype) == ("cuda:1", 7.0, None)
    assert "options.device" in refused(diffusers.Options, {"model": "/m", "device": "gpu"})
    assert "options.dtype" in refused(diffusers.Options, {"model": "/m", "dtype": "int8"})


def test_every_problem_is_named_at_once() -> None:
    message = refused(fal.Options, {"safety_checker": "false", "flag": 1})
    assert "providers.mine.options.safety_checker:" in message
    assert "providers.mine.options.flag: unknown option" in message


def test_adapters_read_typed_options() -> None:
    provider = fal.build(ProviderConfig(name="f", type="fal", options={"safety_checker": False}))
    assert provider._safety_checker is False  # what every request body will carry
    with pytest.raises(ConfigError, match=r"providers\.f\.options\.safety_checker"):
        fal.build(ProviderConfig(name="f", type="fal", options={"safety_checker": "false"}))


def test_the_registry_refuses_bad_options_naming_the_table(tmp_path: Path) -> None:
    path = tmp_path / "imagegate.toml"
    path.write_text(
        '[providers.quick]\ntype = "fal"\n[providers.quick.options]\n'
        'safety_checker = "false"\nsafty_checker = false\n'
    )
    with pytest.raises(ConfigError) as caught:
        ProviderRegistry.from_settings(Settings(data_dir=tmp_path, config=path))
    assert "providers.quick.options.safety_checker: Input should be a valid boolean" in (
        caught.value.detail
    )
    assert "providers.quick.options.safty_checker: unknown option" in caught.value.detail


def test_the_builtin_renderer_takes_no_options(tmp_path: Path) -> None:
    path = tmp_path / "imagegate.toml"
    path.write_text("[providers.builtin.options]\nlatency_ms = 10\n")
    with pytest.raises(ConfigError, match=r"providers\.builtin\.options\.latency_ms: unknown"):
        ProviderRegistry.from_settings(Settings(data_dir=tmp_path, config=path))


def test_an_unknown_model_stops_start_up_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "imagegate.toml"
    path.write_text('[providers.openai]\nmodels = ["gpt-9"]\n')
    with pytest.raises(ConfigError, match=r"providers\.openai: unknown OpenAI image model"):
        ProviderRegistry.from_settings(Settings(data_dir=tmp_path, config=path))


DOCS = Path(__file__).parents[2] / "docs" / "providers"


@pytest.mark.parametrize("page", sorted(p.stem for p in DOCS.glob("*.md")))
def test_each_documented_example_and_options_table_match_the_model(page: str) -> None:
    text = (DOCS / f"{page}.md").read_text()
    example = tomllib.loads(text.split("```toml\n", 1)[1].split("```", 1)[0])
    module = importlib.import_module(f"imagegate.providers.{page}")
    for name, table in example["providers"].items():
        module.Options.of(name, table.get("options", {}))  # the example is valid
    # The options table lists exactly the model's fields.
    section = text.split("## Options", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE))
    assert documented == set(module.Options.model_fields)
