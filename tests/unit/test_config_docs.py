"""docs/configuration.md and the deployment configs stay in step with the declarations:
Settings and the deployments' user_config models (no Ray needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from serve_app import config_docs
from serve_app.embeddings.config import EmbeddingsConfig
from serve_app.ocr.config import OcrConfig
from serve_app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT_CONFIGS = sorted((ROOT / "deployments").glob("*.yaml"))
USER_CONFIG_MODELS: dict[str, type[BaseModel]] = {"embeddings": EmbeddingsConfig, "ocr": OcrConfig}


def test_configuration_doc_is_generated_from_the_declarations():
    path = ROOT / "docs" / "configuration.md"
    assert path.exists(), f"docs/configuration.md is missing: run `{config_docs.COMMAND}`"
    assert path.read_text(encoding="utf-8") == config_docs.render(), (
        f"docs/configuration.md is out of date: run `{config_docs.COMMAND}`"
    )


def test_render_marks_every_generated_table():
    text = config_docs.render()
    assert text.startswith("<!--") and config_docs.COMMAND in text.splitlines()[0]
    for name in ("settings", "embeddings user_config", "ocr user_config"):
        start = text.index(f"<!-- generated: {name} -->")
        assert config_docs.END_MARKER in text[start:]
    assert text.count("<!-- generated: ") == text.count(config_docs.END_MARKER) == 3


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_has_a_description(name: str):
    description = Settings.model_fields[name].description
    assert isinstance(description, str) and description.strip(), f"Settings.{name}"


@pytest.mark.parametrize(
    ("model", "name"),
    [(model, name) for model in (EmbeddingsConfig, OcrConfig) for name in model.model_fields],
    ids=lambda value: value.__name__ if isinstance(value, type) else value,
)
def test_every_user_config_key_has_a_description(model: type[BaseModel], name: str):
    description = model.model_fields[name].description
    assert isinstance(description, str) and description.strip(), f"{model.__name__}.{name}"


def test_every_setting_and_key_has_a_row():
    settings = config_docs.settings_table()
    for name, field in Settings.model_fields.items():
        for env in config_docs.env_names(name, field):
            assert f"`{env}`" in settings
    for model in (OcrConfig, EmbeddingsConfig):
        table = config_docs.user_config_table(model)
        keys = [row.split("|")[1].strip() for row in table.splitlines()[2:]]
        assert keys == [f"`{name}`" for name in model.model_fields]


def test_environment_names_follow_the_prefix_and_the_aliases():
    fields = Settings.model_fields
    assert config_docs.env_names("port", fields["port"]) == ["SERVE_APP_PORT"]
    assert config_docs.env_names("database_url", fields["database_url"]) == [
        "DATABASE_URL",
        "SERVE_APP_DATABASE_URL",
    ]
    assert config_docs.env_names("node_ip", fields["node_ip"]) == [
        "SERVE_APP_NODE_IP",
        "FLY_PRIVATE_IP",
    ]


def test_user_config_models_refuse_unknown_keys():
    # what makes the YAML check below (and reconfigure) catch a misspelt key
    for model in (EmbeddingsConfig, OcrConfig):
        assert model.model_config.get("extra") == "forbid", model.__name__


def _user_configs(path: Path) -> dict[str, dict]:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    app = config["applications"][0]
    deployments = {d["name"]: d for d in app.get("deployments") or []}
    return {
        name: deployments[name]["user_config"]
        for name in USER_CONFIG_MODELS
        if name in deployments and deployments[name].get("user_config") is not None
    }


@pytest.mark.parametrize("path", DEPLOYMENT_CONFIGS, ids=lambda path: path.name)
def test_deployment_user_configs_validate_against_the_models(path: Path):
    user_configs = _user_configs(path)
    assert user_configs, f"{path.name}: no user_config for {sorted(USER_CONFIG_MODELS)}"
    for name, user_config in user_configs.items():
        USER_CONFIG_MODELS[name].model_validate(user_config)  # an unknown key raises


def test_deployment_configs_exist():
    assert DEPLOYMENT_CONFIGS


# Full SERVE_APP_ names only: a name ending in "_" (or followed by "*") is a pattern or a
# listing such as `SERVE_APP_RAY_PORT`, `..._CLIENT_SERVER_PORT`.
_NAME = re.compile(r"SERVE_APP_[A-Z0-9_]+")


def _mentioned_names() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for match in _NAME.finditer(text):
            name = match.group()
            if name.endswith("_") or text[match.end() : match.end() + 1] == "*":
                continue
            found.setdefault(name, []).append(path.name)
    return found


def test_docs_mention_only_declared_settings():
    declared = {
        env
        for name, field in Settings.model_fields.items()
        for env in config_docs.env_names(name, field)
    }
    mentioned = _mentioned_names()
    assert mentioned, "no SERVE_APP_ variable found in README.md or docs/"
    unknown = {
        name: sorted(set(files)) for name, files in mentioned.items() if name not in declared
    }
    assert not unknown, f"SERVE_APP_ variables that Settings does not declare: {unknown}"
