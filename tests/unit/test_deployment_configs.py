"""The deployment configs: the Serve configs in deployments/, fly.toml, the Dockerfile and the
workflows parse, agree with each other, and are what `serve-app run` takes and fits to a node."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from serve_app.cli.main import build_parser
from serve_app.fly.autoscale import Policy
from serve_app.settings import Settings
from serve_app.startup import StartupError
from serve_app.startup.config import fit_cpus, load_config

ROOT = Path(__file__).resolve().parents[2]
FLY = tomllib.loads((ROOT / "fly" / "fly.toml").read_text())
CONFIGS = sorted((ROOT / "deployments").glob("*.yaml"))


def seconds(value: str | int) -> float:
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(\d+)(ms|s|m)", value)
    assert match, value
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]


def megabytes(value: str | int) -> int:
    """fly.toml's memory: an integer (MB) or "512mb" / "2gb"."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(\d+)(mb|gb)", value.lower())
    assert match, value
    return int(match[1]) * (1024 if match[2] == "gb" else 1)


def deployments(path: Path) -> dict:
    config = load_config(path, "127.0.0.1", 8000)
    return {d.name: d for d in config.applications[0].deployments}


def fly_settings() -> Settings:
    """Settings as a Fly machine sees them: fly.toml's [env] (and FLY_PRIVATE_IP)."""
    return Settings(**_as_fields(FLY["env"]))


def _as_fields(env: dict[str, str]) -> dict[str, str]:
    fields = {}
    for key, value in env.items():
        assert key.startswith("SERVE_APP_"), key
        name = key.removeprefix("SERVE_APP_").lower()
        assert name in Settings.model_fields, f"fly.toml sets unknown {key}"
        fields[name] = value
    return fields


def test_every_serve_config_parses_and_sheds_load():
    assert {p.name for p in CONFIGS} >= {"local.yaml", "fly.yaml", "gpu.yaml"}
    for path in CONFIGS:
        for name, d in deployments(path).items():
            assert d.max_queued_requests not in (None, -1), f"{path.name}:{name} never sheds"
            if name != "ingress":
                has_scaling = d.autoscaling_config or d.num_replicas
                assert has_scaling, f"{path.name}:{name} has no replica settings"


@pytest.mark.parametrize("name", ["local.yaml", "fly.yaml", "gpu.yaml"])
def test_configs_validate_and_take_host_port(name: str):
    config = load_config(ROOT / "deployments" / name, "127.0.0.1", 8123)
    assert config.http_options.port == 8123
    app = config.applications[0]
    assert app.import_path == "serve_app.app:build_app"
    deployments = {d.name: d for d in app.deployments}
    assert set(deployments) == {"ingress", "embeddings", "ocr", "solver"}
    # OCR on a CPU is rapidocr (its weights in its package), on a GPU docTR
    assert deployments["ocr"].user_config["engine"] == (
        "doctr" if name == "gpu.yaml" else "rapidocr"
    )
    emb = deployments["embeddings"]
    assert emb.max_queued_requests > 0
    assert emb.user_config["max_batch_tokens"] >= 4096
    ocr = deployments["ocr"]
    assert ocr.max_ongoing_requests >= ocr.user_config["max_batch_size"]  # or batches stay small


def test_a_config_for_more_cores_is_fitted_to_this_node_saying_so():
    config = load_config(ROOT / "deployments" / "fly.yaml", "127.0.0.1", 8000)
    asked = {d.name: d.ray_actor_options.num_cpus for d in config.applications[0].deployments}
    message = fit_cpus(config, 2)
    fitted = {d.name: d.ray_actor_options.num_cpus for d in config.applications[0].deployments}
    assert sum(asked.values()) > 2 >= sum(fitted.values())
    assert all(0 < fitted[name] < asked[name] for name in asked)
    assert fitted["embeddings"] / fitted["ingress"] == asked["embeddings"] / asked["ingress"]
    assert message and "this node has 2" in message and "fitted" in message
    local = load_config(ROOT / "deployments" / "local.yaml", "127.0.0.1", 8000)
    assert fit_cpus(local, 2) is None  # made for two cores: left as it is


def test_bad_config_is_reported(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("applications: [{name: x, import_path: 5, deployments: nope}]\n")
    with pytest.raises(StartupError, match="not a valid Serve config"):
        load_config(bad, "127.0.0.1", 8000)
    with pytest.raises(StartupError, match="not found"):
        load_config(tmp_path / "missing.yaml", "127.0.0.1", 8000)


def test_fly_toml_and_fly_yaml_agree():
    fly_yaml = deployments(ROOT / "deployments" / "fly.yaml")
    service = FLY["http_service"]
    settings = fly_settings()
    # one port everywhere: the server, the proxy's internal_port, the metrics scrape
    assert service["internal_port"] == settings.port == FLY["metrics"]["port"]
    assert FLY["metrics"]["path"] == "/metrics"
    assert settings.host == "::"  # IPv4 for the proxy and IPv6 for 6PN (serve-app maps it)
    assert FLY["env"]["SERVE_APP_CONFIG"] == "deployments/fly.yaml"
    # the CPU image reads receipts with rapidocr, whose weights ship in its package: it needs
    # no docTR weights, and fly.toml builds that image
    assert "SERVE_APP_OCR_REQUIRE_WEIGHTS" not in FLY["env"]
    assert FLY["build"] == {"build-target": "cpu"}
    assert {d.user_config["engine"] for n, d in fly_yaml.items() if n == "ocr"} == {"rapidocr"}
    # every model keeps a warm replica: a machine resumed from suspend answers at once
    for name in ("embeddings", "ocr", "solver"):
        assert fly_yaml[name].autoscaling_config["min_replicas"] >= 1, name
    # the proxy never sends a machine more than the ingress takes at once
    concurrency = service["concurrency"]
    assert concurrency["type"] == "requests"
    assert concurrency["soft_limit"] < concurrency["hard_limit"]
    assert concurrency["hard_limit"] == fly_yaml["ingress"].max_ongoing_requests
    # the autoscaler's default target is the proxy's soft limit; `serve-app fly autoscale`
    # declares no defaults of its own (what it is not given is the policy's)
    fly_args = build_parser().parse_args(["fly", "autoscale"])
    assert fly_args.target_inflight is None and fly_args.min is None
    assert Policy().target_inflight == concurrency["soft_limit"]
    # readiness: /health, with a grace period for Ray's start and model loading
    (check,) = service["checks"]
    assert check["path"] == "/health" and check["method"] == "GET"
    assert seconds(check["grace_period"]) >= 60
    # idle at zero machines: the proxy stops or suspends the last one and wakes it
    assert service["min_machines_running"] == 0 and service["auto_start_machines"] is True
    assert service["auto_stop_machines"] in ("suspend", "stop")
    assert Policy().min_machines == service["min_machines_running"]  # the autoscaler agrees
    if service["auto_stop_machines"] == "suspend":  # Fly suspends machines of <= 2 GB only
        (vm,) = FLY["vm"]
        assert megabytes(vm["memory"]) <= 2048
    # stopping: SIGTERM, and time to drain (30 s at most) plus the stop after it (a few s)
    run_args = build_parser().parse_args(["run"])
    assert FLY["kill_signal"] == "SIGTERM"
    assert seconds(FLY["kill_timeout"]) >= run_args.drain_timeout + 10
    assert seconds(FLY["kill_timeout"]) <= 300  # Fly's maximum
    solver_grace = fly_yaml["solver"].graceful_shutdown_timeout_s
    assert solver_grace * 1000 >= Settings().plans_max_timeout_ms


def test_fly_toml_deploys_rolling_with_migrations_and_a_cpu_vm():
    assert FLY["deploy"]["strategy"] == "rolling"
    assert FLY["deploy"]["release_command"] == "serve-app db migrate"
    (vm,) = FLY["vm"]
    assert vm["size"].startswith("performance-")
    assert "gpu_kind" not in vm  # GPU machines are withdrawn


def test_fly_processes_form_a_ray_cluster_over_6pn():
    settings = fly_settings()
    processes = FLY["processes"]
    assert processes["app"].split()[:3] == ["serve-app", "run", "--head"]
    assert "--config deployments/fly.yaml" in processes["app"]
    assert processes["worker"] == "serve-app join"
    assert FLY["http_service"]["processes"] == ["app"]  # workers serve no HTTP
    assert settings.ray_head_address == f"app.process.{FLY['app']}.internal:{settings.ray_port}"
    ports = [
        settings.ray_port,
        settings.ray_client_server_port,
        settings.ray_node_manager_port,
        settings.ray_object_manager_port,
        settings.ray_runtime_env_agent_port,
        settings.ray_dashboard_agent_grpc_port,
        settings.ray_dashboard_agent_listen_port,
        settings.ray_metrics_export_port,
        settings.port,
    ]
    assert len(set(ports)) == len(ports) and all(ports)
    worker_range = range(settings.ray_min_worker_port, settings.ray_max_worker_port + 1)
    assert len(worker_range) >= 100
    assert not set(ports) & set(worker_range)


def test_no_secrets_in_fly_toml():
    for key, value in FLY["env"].items():
        assert not re.search(r"TOKEN|SECRET|PASSWORD|DATABASE_URL", key), key
        assert "://" not in value or "@" not in value, key


def test_gpu_yaml_shares_one_gpu_and_batches_more():
    gpu = deployments(ROOT / "deployments" / "gpu.yaml")
    cpu = deployments(ROOT / "deployments" / "fly.yaml")
    shares = [d.ray_actor_options.num_gpus or 0 for d in gpu.values()]
    assert all(0 <= s < 1 for s in shares) and 0 < sum(shares) <= 1
    assert not gpu["ingress"].ray_actor_options.num_gpus
    assert gpu["embeddings"].ray_actor_options.num_gpus > 0
    assert gpu["ocr"].ray_actor_options.num_gpus > 0
    assert gpu["ocr"].user_config["max_batch_size"] > cpu["ocr"].user_config["max_batch_size"]
    assert (
        gpu["embeddings"].user_config["max_batch_tokens"]
        > cpu["embeddings"].user_config["max_batch_tokens"]
    )


def test_scale_to_zero_models_have_a_measured_cold_start_in_the_docs():
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    section = text.split("## Cold start", 1)[1].split("\n## ", 1)[0]
    for path in (ROOT / "deployments" / "fly.yaml", ROOT / "deployments" / "gpu.yaml"):
        for name, d in deployments(path).items():
            scaling = d.autoscaling_config if "autoscaling_config" in d.model_fields_set else {}
            if scaling and scaling["min_replicas"] == 0:
                assert re.search(rf"\| {name} \| [\d.]+ s", section), (path.name, name)


def stage(parser: DockerfileParser, name: str) -> list[dict]:
    """The instructions of the stage named ``name`` (its FROM to the next)."""
    froms = [i for i, ins in enumerate(parser.structure) if ins["instruction"] == "FROM"]
    for n, start in enumerate(froms):
        if parser.structure[start]["value"].split()[-1] == name:
            end = froms[n + 1] if n + 1 < len(froms) else len(parser.structure)
            return parser.structure[start:end]
    raise AssertionError(f"no stage {name}")


def test_dockerfile_invariants():
    parser = DockerfileParser(fileobj=(ROOT / "Dockerfile.gpu").open("rb"))
    content = parser.content
    # the default target is the CPU image (what fly.toml deploys), the CUDA one a target
    assert parser.structure[-1] == {**parser.structure[-1], "instruction": "FROM", "value": "cpu"}
    cpu, gpu = stage(parser, "cpu"), stage(parser, "gpu")
    assert cpu[0]["value"].startswith("${CPU_BASE}") and gpu[0]["value"].startswith("${GPU_BASE}")
    assert re.search(r"^ARG GPU_BASE=nvidia/cuda:[\w.-]+runtime", content, re.M)
    # the CPU image installs the core dependencies only: no torch, docTR or CUDA there; the
    # model's export is made in a stage of its own that has torch, and only its output copied
    deps = " ".join(i["value"] for i in stage(parser, "cpu-deps") if i["instruction"] == "RUN")
    assert 'pip install ".[sentry]"' in deps and "torch" not in deps
    copies = [i["value"] for i in cpu if i["instruction"] == "COPY"]
    assert "--from=cpu-export /opt/serve-app /opt/serve-app" in copies
    assert not any("--from=cpu-export /opt/venv" in c for c in copies)
    torch = " ".join(i["value"] for i in stage(parser, "cpu-torch"))
    assert '".[export]"' in torch
    export = " ".join(i["value"] for i in stage(parser, "cpu-export"))
    assert stage(parser, "cpu-export")[0]["value"].startswith("cpu-torch")
    assert "serve-app embeddings export" in export
    # the gpu image bakes docTR's weights for gpu.yaml, and reads with them
    package = " ".join(i["value"] for i in stage(parser, "gpu-package"))
    assert "weights download --config deployments/gpu.yaml" in package
    for target, config in ((cpu, "fly.yaml"), (gpu, "gpu.yaml")):
        by = {i["instruction"]: i["value"] for i in target}
        # non-root, liveness check, clean stop, the documented command
        assert by["USER"] not in ("root", "0")
        assert "/health/live" in by["HEALTHCHECK"]
        assert by["STOPSIGNAL"] == "SIGTERM"
        assert by["CMD"] == f'["serve-app", "run", "--config", "deployments/{config}"]'
        assert f"SERVE_APP_CONFIG=deployments/{config}" in by["ENV"]
        assert "SERVE_APP_EMBEDDINGS_ONNX_DIR=/opt/serve-app/onnx" in by["ENV"]
    assert "--mount=type=secret,id=pip.conf" in content
    for host_only in ("/opt/pypi", "/opt/wheels", "/etc/ssl/certs/ca-certificates.crt"):
        assert host_only not in content
    # no secrets baked in
    for instruction in parser.structure:
        if instruction["instruction"] in ("ENV", "ARG"):
            assert not re.search(r"TOKEN|SECRET|PASSWORD|DATABASE_URL", instruction["value"])
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", ".data", "benchmarks", ".env"):
        assert path in ignored


def test_package_data_ships_every_non_python_file():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["serve_app"]
    package = ROOT / "serve_app"
    for path in package.rglob("*"):
        if path.is_file() and path.suffix not in (".py", ".pyc"):
            relative = path.relative_to(package)
            assert any(relative.match(p) for p in patterns), f"{relative} would be left out"


def test_workflows_run_the_readme_test_command_and_deploy_after_ci():
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = ci["jobs"]["test"]["steps"]
    runs = " ".join(s.get("run", "") for s in steps)
    assert "bash .ci/run" in runs
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["cache"] == "pip"
    deploy = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    trigger = deploy[True]["workflow_run"]  # YAML 1.1 reads the key `on` as True
    assert trigger["workflows"] == [ci["name"]] and trigger["branches"] == ["main"]
    job = deploy["jobs"]["deploy"]
    assert "conclusion == 'success'" in job["if"]
    command = " ".join(s.get("run", "") for s in job["steps"])
    assert "flyctl deploy --remote-only --config fly/fly.toml" in command


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_batching_lives_in_user_config_not_code(path):
    for name, d in deployments(path).items():
        if name in ("embeddings", "ocr"):
            assert d.user_config, f"{path.name}:{name} has no batch settings"
        if name == "solver":
            assert "user_config" not in d.model_fields_set  # batching does not apply
