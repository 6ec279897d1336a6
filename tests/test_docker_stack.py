"""The Docker image and compose stack, checked statically: no Docker engine runs on this machine.

What can be checked without building or starting anything is checked against the real thing: versions
against uv.lock, every command against the parser of the program that will run it (Airflow's CLI, the
emulator's, our own), every AIRFLOW__* variable against Airflow's config schema, every ${VAR} against
the example .env, every copied or mounted path against the repository, and the init job's password
snippet by running it. Compose's variable interpolation is replayed here (``interpolate``) so that what
each service would receive from .env.example is checked, and the secrets check the stack runs first is
run for real against it. The health-check script is unit-tested here and run against live components in
tests/test_celery_executor.py.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
AIRFLOW_SERVICES = {
    "airflow-init",
    "api-server",
    "scheduler",
    "dag-processor",
    "triggerer",
    "worker-1",
    "worker-2",
    "worker-keras",
}
SERVICES = AIRFLOW_SERVICES | {"secrets-check", "postgres", "redis", "gcs"}
WORKERS = ("worker-1", "worker-2")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR and $$ (a literal $)
VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@cache
def lock_versions() -> dict[str, set[str]]:
    """Each package's locked versions: two where the Estimator and Keras runtimes differ (tensorflow)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions: dict[str, set[str]] = {}
    for package in lock["package"]:
        if "version" in package:
            versions.setdefault(package["name"], set()).add(package["version"])
    return versions


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with comments dropped and line continuations joined."""
    logical, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def python_minor() -> str:
    match = re.search(r">=\s*(3\.\d+)", pyproject()["project"]["requires-python"])
    assert match, pyproject()["project"]["requires-python"]
    return match.group(1)


def image_tag() -> str:
    return f"exportflow-airflow:{pyproject()['project']['version']}"


def load_script(name: str):
    """A standalone script of docker/ as a module (they are not part of any package)."""
    module_name = f"exportflow_docker_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, DOCKER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def load_healthcheck():
    return load_script("healthcheck")


class MissingVariable(Exception):
    """What compose reports for ${VAR:?error} / ${VAR?error} and refuses to start."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation of every string in the parsed file, the way `docker compose` applies it."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg, current = match["op"], match["arg"], env.get(name)
        missing = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-") and missing:
            return arg
        if op in (":?", "?") and missing:
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        return current or ""

    return VARIABLE.sub(substitute, value)


def resolved_compose(env: dict[str, str]) -> dict[str, Any]:
    return interpolate(compose(), env)


def airflow_env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in compose()["services"][service]["environment"].items()}


# --- the image -----------------------------------------------------------------------------------


def test_image_is_the_official_airflow_image_of_the_locked_airflow_and_python() -> None:
    instructions = dockerfile_instructions(DOCKER / "Dockerfile")
    (base,) = [args for name, args in instructions if name == "FROM"]
    (airflow,) = lock_versions()["apache-airflow"]
    assert base == f"apache/airflow:{airflow}-python{python_minor()}"
    assert base == "apache/airflow:3.3.2-python3.11"


def test_image_installs_the_lock_hash_checked_as_the_airflow_user_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions(DOCKER / "Dockerfile")
    users = [args for name, args in instructions if name == "USER"]
    assert users[-1] == "airflow" and instructions[-1] == ("USER", "airflow")
    runs = " && ".join(args for name, args in instructions if name == "RUN")
    assert "uv export --frozen --no-dev --no-emit-project" in runs  # exactly the lock, never re-resolved
    assert "pip install --no-cache-dir --require-hashes -r" in runs
    assert "pip install --no-cache-dir --no-deps ." in runs  # the project itself adds no dependency
    # every RUN that installs runs as airflow (pip into the image's environment, as the image documents)
    current = "root"
    for name, args in instructions:
        current = args if name == "USER" else current
        if name == "RUN" and "pip install" in args:
            assert current == "airflow", args

    (healthcheck,) = [args for name, args in instructions if name == "HEALTHCHECK"]
    assert re.search(r"--interval=\d+s", healthcheck) and re.search(r"--timeout=\d+s", healthcheck)
    command = json.loads(healthcheck.split("CMD", 1)[1])
    copied = [args.split()[-2:] for name, args in instructions if name == "COPY" and "--from" not in args]
    assert ["docker/healthcheck.py", command[-1]] in copied


def test_image_extras_exist_and_the_lock_export_holds_what_the_stack_needs() -> None:
    instructions = dockerfile_instructions(DOCKER / "Dockerfile")
    (extras_arg,) = [
        args for name, args in instructions if name == "ARG" and args.startswith("EXPORTFLOW_EXTRAS=")
    ]
    flags = shlex.split(extras_arg.split("=", 1)[1])[0].split()
    extras = flags[1::2]
    assert flags[::2] == ["--extra"] * len(extras) and set(extras) <= set(
        pyproject()["project"]["optional-dependencies"]
    )
    assert {"celery", "kubernetes"} <= set(extras)

    uv = os.environ.get("UV") or "uv"  # `uv run` tells its children where it is
    exported = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-emit-project", *flags, "--format", "requirements-txt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", exported, flags=re.MULTILINE))
    locked = lock_versions()
    for name in (
        "apache-airflow",
        "tensorflow",
        "apache-airflow-providers-celery",
        "celery",
        "redis",
        "psycopg2-binary",
        "asyncpg",
        "apache-airflow-providers-cncf-kubernetes",
        "google-cloud-storage",
    ):
        assert pins.get(name) in locked[name], name
    assert pins["tensorflow"] == "2.15.1"  # the Estimator runtime (the default groups)
    assert "--hash=sha256:" in exported  # what --require-hashes needs
    assert "pytest" not in pins and "gcp-storage-emulator" not in pins  # no dev tools in the image


def test_uv_in_the_image_is_the_version_ci_uses() -> None:
    instructions = dockerfile_instructions(DOCKER / "Dockerfile")
    (uv_copy,) = [args for name, args in instructions if name == "COPY" and "astral-sh/uv" in args]
    ci_version = re.search(r'"uv==([\d.]+)"', (ROOT / ".ci" / "run").read_text()).group(1)
    assert f"ghcr.io/astral-sh/uv:{ci_version} " in uv_copy


def test_every_copied_path_exists_and_is_not_ignored() -> None:
    ignore = [
        line.strip()
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for name, args in dockerfile_instructions(DOCKER / "Dockerfile"):
        if name == "COPY" and "--from" not in args:
            parts = [p for p in args.split() if not p.startswith("--")]
            sources += parts[:-1]
    assert {"pyproject.toml", "uv.lock", "components", "plugins", "examples", "docker/healthcheck.py"} <= set(
        sources
    )
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not any(
            fnmatch.fnmatch(source, pattern) or source.startswith(pattern + "/") for pattern in ignore
        )
    # what the wheel packages (hatch) is exactly what the image copies before `pip install .`
    packages = set(pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    assert packages <= set(sources)


def test_image_tag_follows_the_project_version_everywhere() -> None:
    env = dotenv_example()
    assert env["EXPORTFLOW_IMAGE"] == image_tag()
    assert compose()["x-airflow-common"]["image"] == f"${{EXPORTFLOW_IMAGE:-{image_tag()}}}"
    template = yaml.safe_load((DOCKER / "kubernetes" / "pod_template.yaml").read_text())
    assert template["spec"]["containers"][0]["image"] == image_tag()
    assert f"-t {image_tag()} " in (DOCKER / "Dockerfile").read_text()


def test_gcs_emulator_image_runs_the_locked_emulator_version() -> None:
    (version,) = lock_versions()["gcp-storage-emulator"]
    instructions = dockerfile_instructions(DOCKER / "gcs-emulator" / "Dockerfile")
    assert ("ARG", f"GCP_STORAGE_EMULATOR_VERSION={version}") in instructions
    assert compose()["services"]["gcs"]["image"] == f"exportflow-gcs-emulator:{version}"


# --- the compose stack ---------------------------------------------------------------------------


def dotenv_example() -> dict[str, str]:
    pairs = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_stack_has_every_component_and_the_airflow_ones_share_the_image() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    common = compose()["x-airflow-common"]
    assert (
        DOCKER / common["build"]["context"] / common["build"]["dockerfile"]
    ).resolve() == DOCKER / "Dockerfile"
    for name in AIRFLOW_SERVICES - {"worker-keras"}:  # the Keras worker: its own image (test below)
        assert services[name]["image"] == common["image"], name
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services and dependency != name, (name, dependency)
    for name in ("postgres", "redis", "secrets-check"):
        image = services[name]["image"]
        assert ":" in image and not image.endswith(":latest"), image  # pinned


def test_every_airflow_command_is_accepted_by_the_locked_airflow_cli() -> None:
    from airflow.cli.cli_parser import get_parser

    parser = get_parser()
    services = compose()["services"]
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES - {"airflow-init"}}
    assert commands["api-server"] == ["api-server"] and commands["dag-processor"] == ["dag-processor"]
    init_script = services["airflow-init"]["command"][-1]
    commands["airflow-init"] = shlex.split(
        next(line for line in init_script.splitlines() if line.startswith("airflow "))
    )[1:]
    assert commands["airflow-init"] == ["db", "migrate"]
    healthcheck = load_healthcheck()
    for component in healthcheck.JOB_TYPES:
        commands[f"healthcheck {component}"] = [
            "jobs",
            "check",
            "--job-type",
            healthcheck.JOB_TYPES[component],
            "--local",
        ]
    for name, command in commands.items():
        try:
            parser.parse_args(command)
        except SystemExit as exc:  # argparse's way of refusing
            raise AssertionError(f"{name}: `airflow {' '.join(command)}` is not a valid command") from exc


def test_workers_are_two_distinct_celery_nodes_on_distinct_hosts() -> None:
    services = compose()["services"]
    healthcheck = load_healthcheck()
    workers = [services["worker-1"], services["worker-2"]]
    hosts = [w["hostname"] for w in workers]
    nodes = [healthcheck.celery_node_name(w["command"][2:], w["hostname"]) for w in workers]
    assert len(set(hosts)) == 2 and len(set(nodes)) == 2
    assert nodes == ["worker-1@exportflow-worker-1", "worker-2@exportflow-worker-2"]
    for worker in workers:
        assert healthcheck.component_of(worker["command"])[0] == "celery worker"
        assert worker["environment"]["DUMB_INIT_SETSID"] == "0"  # warm shutdown on SIGTERM
        assert "api-server" in worker["depends_on"]  # tasks talk to the Execution API


def test_every_airflow_setting_is_a_real_option() -> None:
    from airflow.configuration import conf

    names = set()
    for service in AIRFLOW_SERVICES:
        names |= {k for k in airflow_env(service) if k.startswith("AIRFLOW__")}
    assert len(names) > 10
    described = conf.configuration_description  # core's config.yml plus every provider's (celery...)
    for name in sorted(names):
        _, section, key = name.split("__", 2)
        options = described.get(section.lower(), {}).get("options", {})
        assert key.lower() in options, f"{name}: no such Airflow option"


def test_settings_point_at_the_services_of_the_stack() -> None:
    from sqlalchemy.engine import make_url

    services = compose()["services"]
    env = airflow_env("scheduler")
    database = make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    postgres = services["postgres"]["environment"]
    assert (database.host, database.username, database.database) == (
        "postgres",
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_DB"],
    )
    assert database.password == postgres["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD}"
    assert database.drivername == "postgresql+psycopg2"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    api_port = services["api-server"]["ports"][0].split(":")[-1]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://api-server:{api_port}/execution/"
    gcs_command = services["gcs"]["command"]
    assert env["STORAGE_EMULATOR_HOST"] == f"http://gcs:{gcs_command[gcs_command.index('--port') + 1]}"


def test_every_variable_is_defined_in_the_example_env_and_every_example_is_used() -> None:
    used = [
        (match["braced"] or match["bare"], match["op"])
        for value in strings_of(compose())
        for match in VARIABLE.finditer(value)
        if not match["escaped"]
    ]
    defined = dotenv_example()
    for name, op in used:
        assert name in defined or op in (":-", "-"), (
            f"${{{name}}} has neither a default nor a line in .env.example"
        )
    assert set(defined) <= {name for name, _ in used}, "a variable in .env.example that compose never reads"
    resolved_compose(defined)  # .env.example leaves no required variable empty
    assert {"AIRFLOW_JWT_SECRET", "POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD"} <= set(defined)
    assert ".env" in (DOCKER / ".gitignore").read_text().splitlines()  # the real one never gets committed


def strings_of(value: Any) -> list[str]:
    """Every string in a parsed YAML document (what compose interpolates; comments are not)."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_of(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings_of(item)]
    return [value] if isinstance(value, str) else []


def split_volume(spec: str) -> tuple[str, str, bool]:
    """(source, target, source came from a variable) of a short-syntax volume, ${VAR:-default} resolved."""
    from_variable = "${" in spec.split(":/")[0]
    resolved = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", spec)
    source, target = resolved.split(":")[:2]
    return source, target, from_variable


def test_mounted_folders_exist_and_named_volumes_are_declared() -> None:
    declared = set(compose()["volumes"])
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source, target, from_variable = split_volume(volume)
            if source.startswith(".") and not from_variable:  # a variable's default may be made later
                assert (DOCKER / source).exists(), (name, source)
            elif not source.startswith("."):
                assert source in declared, (name, source)
            assert target.startswith("/"), (name, target)
    mounts = {split_volume(v)[1]: split_volume(v)[0] for v in compose()["x-airflow-common"]["volumes"]}
    assert (DOCKER / mounts["/opt/airflow/dags"] / "exportflow_dags.py").is_file()
    assert (DOCKER / mounts["/opt/airflow/plugins"] / "dag_factory.py").is_file()


def test_workers_share_no_disk_each_has_its_own_scratch() -> None:
    """Stages hand over through the bucket: no staging volume, and each worker's temp folder is its own."""
    services = compose()["services"]
    assert "staging" not in compose()["volumes"]
    common = {split_volume(v) for v in compose()["x-airflow-common"]["volumes"]}
    assert not any(target.startswith("/data/staging") for _, target, _ in common)
    scratch_volumes = []
    for name in WORKERS:
        worker = services[name]
        scratch = worker["environment"]["TMPDIR"]
        mounts = {split_volume(v)[1]: split_volume(v)[0] for v in worker["volumes"]}
        assert common <= {split_volume(v) for v in worker["volumes"]}, name  # everything else as the rest
        assert mounts[scratch] in compose()["volumes"], name  # a named volume, not a host folder
        scratch_volumes.append(mounts[scratch])
    assert len(set(scratch_volumes)) == len(WORKERS)
    for name, service in services.items():  # no other service mounts a worker's scratch
        sources = {split_volume(v)[0] for v in service.get("volumes", [])}
        if name not in WORKERS:
            assert not sources & set(scratch_volumes), name
        else:
            assert len(sources & set(scratch_volumes)) == 1, name
    # the image prepares the folder for the airflow user (a fresh named volume copies its owner)
    (mkdir,) = [
        args for name, args in dockerfile_instructions(DOCKER / "Dockerfile") if args.startswith("mkdir -p")
    ]
    assert services["worker-1"]["environment"]["TMPDIR"] in mkdir.split("&&")[0].split()


def test_stack_config_is_valid_and_publishes_to_the_emulator_bucket(tmp_path: Path) -> None:
    from components.config import load_config

    env = airflow_env("worker-1")
    mounts = {split_volume(v)[1]: split_volume(v)[0] for v in compose()["x-airflow-common"]["volumes"]}
    configs = DOCKER / mounts[env["EXPORTFLOW_CONFIGS_DIR"]]
    assert sorted(p.name for p in configs.glob("*.yaml")) == ["example.yaml", "example_keras.yaml"]
    path = configs / "example.yaml"
    config = load_config(path)
    gcs_command = compose()["services"]["gcs"]["command"]
    bucket = gcs_command[gcs_command.index("--default-bucket") + 1]
    assert config.destination.uri.startswith(f"gs://{bucket}/")
    # export, warmup and publish hand over through the emulator's bucket, not a folder of one worker
    assert config.staging == f"{config.destination.uri}/.exportflow/{config.name}/staging"
    assert config.staging.startswith(f"gs://{bucket}/")
    assert "staging_dir" not in yaml.safe_load(path.read_text())
    assert config.model_dir.startswith("/data/workspace/")
    assert config.airflow.max_active_tf_tasks == 2  # one TF task per worker


def test_gcs_emulator_command_is_accepted_by_the_emulator() -> None:
    from gcp_storage_emulator.__main__ import prepare_args_parser

    gcs = compose()["services"]["gcs"]
    args = prepare_args_parser()[0].parse_args(gcs["command"])
    assert (args.subcommand, args.host, args.no_store_on_disk) == ("start", "0.0.0.0", True)
    assert gcs["ports"] == [f"127.0.0.1:{args.port}:{args.port}"]  # demo-only, unauthenticated: loopback
    assert f":{args.port}/" in " ".join(gcs["healthcheck"]["test"])


def test_init_job_migrates_and_writes_the_admin_password_where_the_api_server_reads_it(
    tmp_path: Path,
) -> None:
    init = compose()["services"]["airflow-init"]
    assert init["entrypoint"] == "/bin/bash" and init["command"][0] == "-euc"
    assert init["depends_on"] == {
        "secrets-check": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
    }
    script = init["command"][1].replace("\\\n", " ")
    (line,) = [line for line in script.splitlines() if line.strip().startswith("python -c")]
    words = shlex.split(line)
    code, target = words[2], words[words.index(">") + 1]
    assert target == airflow_env("api-server")["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    written = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "AIRFLOW_ADMIN_USER": "ops", "AIRFLOW_ADMIN_PASSWORD": 'pa"ss word'},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(written) == {"ops": 'pa"ss word'}  # quotes and spaces survive
    mounted = {split_volume(v)[1] for v in compose()["x-airflow-common"]["volumes"]}
    assert os.path.dirname(target) in mounted  # the api-server sees what the init job wrote
    assert (
        airflow_env("api-server")["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "${AIRFLOW_ADMIN_USER}:admin"
    )


# --- secrets and exposure -------------------------------------------------------------------------


SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY")


def check_secrets(env: dict[str, str]) -> subprocess.CompletedProcess:
    """docker/check_secrets.py run as the secrets-check service runs it: alone, with only its environment."""
    return subprocess.run(
        [sys.executable, DOCKER / "check_secrets.py"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )


def generated_secrets() -> dict[str, str]:
    """Every secret made by running the very command .env.example and the refusal tell the user to run."""
    checker = load_script("check_secrets")
    return {
        secret.name: subprocess.run(
            ["bash", "-c", secret.generate], capture_output=True, text=True, check=True
        ).stdout.strip()
        for secret in checker.SECRETS
    }


def test_every_service_waits_for_the_secrets_check() -> None:
    services = compose()["services"]
    check = services["secrets-check"]
    assert "depends_on" not in check and check["restart"] == "no"
    assert check["network_mode"] == "none" and check["read_only"] is True  # it needs nothing but its env
    (mount,) = check["volumes"]
    source, target, _ = split_volume(mount)
    assert (DOCKER / source).resolve() == DOCKER / "check_secrets.py" and mount.endswith(":ro")
    assert check["entrypoint"] == ["python", target]
    for name, service in services.items():
        if name != "secrets-check":
            assert service["depends_on"]["secrets-check"] == {
                "condition": "service_completed_successfully"
            }, name


def test_every_secret_of_the_example_env_is_checked_and_required_by_compose() -> None:
    checker = load_script("check_secrets")
    secrets = {secret.name: secret for secret in checker.SECRETS}
    assert set(secrets) == {name for name in dotenv_example() if SECRET_NAME.search(name)}
    environment = compose()["services"]["secrets-check"]["environment"]
    assert set(environment) == set(secrets)
    for name, secret in secrets.items():
        # compose refuses an unset or empty one before creating any container, and says how to make one
        assert environment[name].startswith(f"${{{name}:?"), name
        env = {**dotenv_example(), name: ""}
        with pytest.raises(MissingVariable, match=f"variable {name} is missing") as refused:
            resolved_compose(env)
        assert secret.generate in str(refused.value)
        without = {key: value for key, value in dotenv_example().items() if key != name}
        with pytest.raises(MissingVariable, match=name):
            resolved_compose(without)


def test_the_example_env_is_refused_naming_every_placeholder_and_how_to_make_it() -> None:
    example = dotenv_example()
    environment = resolved_compose(example)["services"]["secrets-check"]["environment"]
    done = check_secrets(environment)
    assert done.returncode == 1
    assert done.stderr.startswith("refusing to start: 4 secret(s) in docker/.env need a real value\n")
    for secret in load_script("check_secrets").SECRETS:
        assert (
            f"{secret.name} is still the placeholder from docker/.env.example: set it in docker/.env to the "
            f"output of\n    {secret.generate}\n" in done.stderr
        )
        assert example[secret.name] not in done.stderr + done.stdout  # values are never printed


def test_generated_secrets_are_accepted_and_work_where_they_are_used() -> None:
    from cryptography.fernet import Fernet
    from sqlalchemy.engine import make_url

    secrets = generated_secrets()
    env = {**dotenv_example(), **secrets}
    resolved = resolved_compose(env)
    done = check_secrets(resolved["services"]["secrets-check"]["environment"])
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "secrets ok: " + ", ".join(secrets) + "\n"
    # the same values reach the components that use them, and those can use them
    scheduler = resolved["services"]["scheduler"]["environment"]
    Fernet(scheduler["AIRFLOW__CORE__FERNET_KEY"].encode())  # what Airflow does with it
    assert make_url(scheduler["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).password == secrets["POSTGRES_PASSWORD"]
    assert scheduler["AIRFLOW__API_AUTH__JWT_SECRET"] == secrets["AIRFLOW_JWT_SECRET"]
    assert (
        resolved["services"]["airflow-init"]["environment"]["AIRFLOW_ADMIN_PASSWORD"]
        == secrets["AIRFLOW_ADMIN_PASSWORD"]
    )
    assert generated_secrets() != secrets  # random each time, never a value someone else also has


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "AIRFLOW_JWT_SECRET",
            "short-but-not-a-placeholder",
            "is 27 characters long, at least 32 are needed",
        ),
        (
            "AIRFLOW_ADMIN_PASSWORD",
            "ChangeMe-please-2026",
            "is still the placeholder from docker/.env.example",
        ),
        ("AIRFLOW_FERNET_KEY", "A" * 43 + "=,QUJD" + "A" * 40, "decodes to 33 bytes, a Fernet key is 32"),
        ("AIRFLOW_FERNET_KEY", "A" * 43 + "=,QUJD", "decodes to 3 bytes, a Fernet key is 32"),
        ("AIRFLOW_FERNET_KEY", "B" * 48, "decodes to 36 bytes, a Fernet key is 32"),
        (
            "POSTGRES_PASSWORD",
            "p@ss:word/with-a-long-tail",
            "has characters that break the database URL it is written into (use letters, digits, - _ . ~)",
        ),
    ],
)
def test_unusable_secrets_are_refused_with_the_reason(name: str, value: str, message: str) -> None:
    done = check_secrets({**generated_secrets(), name: value})
    assert done.returncode == 1
    assert done.stderr.startswith("refusing to start: 1 secret(s)")
    assert f"{name} {message}: set it in docker/.env to the output of\n" in done.stderr
    assert value not in done.stderr
    if name == "AIRFLOW_FERNET_KEY":  # refused exactly where Airflow's Fernet would refuse it
        from cryptography.fernet import Fernet

        with pytest.raises(ValueError, match="32 url-safe base64-encoded bytes"):
            [Fernet(key.encode()) for key in value.split(",")]


def test_demo_only_services_are_published_on_loopback_only() -> None:
    services = resolved_compose(dotenv_example())["services"]
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert set(published) == {"gcs", "api-server"}  # postgres and redis stay inside the stack's network
    assert compose()["services"]["gcs"]["ports"] == ["127.0.0.1:9023:9023"]  # fixed: no auth at all
    for name, ports in published.items():
        for port in ports:
            host_ip, host_port, container_port = port.split(":")
            assert host_ip == "127.0.0.1", (name, port)
            assert host_port == container_port


# --- the health check ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "component"),
    [
        (["/usr/bin/dumb-init", "--", "/entrypoint", "api-server"], ("api-server", [])),
        (
            ["/usr/bin/dumb-init", "--", "/entrypoint", "celery", "worker", "-H", "w@%h"],
            ("celery worker", ["-H", "w@%h"]),
        ),
        (["airflow", "scheduler"], ("scheduler", [])),
        (["/usr/bin/dumb-init", "--", "/entrypoint", "db", "migrate"], ("db", ["migrate"])),
        (["/usr/bin/dumb-init", "--", "/entrypoint"], ("none", [])),
    ],
)
def test_healthcheck_finds_the_component_in_the_containers_command(argv, component) -> None:
    assert load_healthcheck().component_of(argv) == component


def test_healthcheck_expands_celery_node_names_like_celery() -> None:
    healthcheck = load_healthcheck()
    assert (
        healthcheck.celery_node_name(["--celery-hostname", "w1@%h"], "box.example.com")
        == "w1@box.example.com"
    )
    assert healthcheck.celery_node_name(["-H", "%n-w@%d"], "box.example.com") == "box-w@example.com"
    assert healthcheck.celery_node_name([], "box") == "celery@box"


def test_healthcheck_reports_unhealthy_components_and_unknown_commands() -> None:
    from tests.support.example_pipeline import free_port

    healthcheck = load_healthcheck()
    port = free_port()  # nothing listens there
    healthy, reason = healthcheck.check(["api-server"], {"AIRFLOW__API__PORT": str(port)})
    assert not healthy and f"127.0.0.1:{port}" in reason
    healthy, reason = healthcheck.check(
        ["scheduler"], {"AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(port)}
    )
    assert not healthy and "/health" in reason
    assert healthcheck.check(["webserver"], {}) == (
        False,
        "unknown component 'webserver': pass the container's command as arguments",
    )
    assert healthcheck.check(["db", "migrate"], {})[0] is True


def test_the_keras_worker_runs_the_image_with_the_keras_runtime_and_only_the_keras_queue(monkeypatch) -> None:
    """A Keras model reaches the Keras runtime: its config names the queue only worker-keras consumes, whose
    image is built with EXPORTFLOW_RUNTIME=keras, which installs the lock's keras group where
    EXPORTFLOW_KERAS_PYTHON (the default airflow.python of a Keras model) points."""
    from components.config import load_config

    services = compose()["services"]
    keras_worker = services["worker-keras"]
    assert keras_worker["build"]["args"] == {"EXPORTFLOW_RUNTIME": "keras"}
    assert keras_worker["build"]["dockerfile"] == compose()["x-airflow-common"]["build"]["dockerfile"]
    assert keras_worker["image"] != compose()["x-airflow-common"]["image"]
    command = keras_worker["command"]
    assert command[command.index("--queues") + 1] == "keras"
    assert all("--queues" not in services[w]["command"] for w in WORKERS)  # default queue: Estimator models

    instructions = dockerfile_instructions(DOCKER / "Dockerfile")
    (runtime_arg,) = [a for n, a in instructions if n == "ARG" and a.startswith("EXPORTFLOW_RUNTIME=")]
    assert runtime_arg == "EXPORTFLOW_RUNTIME=estimator"
    (keras_run,) = [a for n, a in instructions if n == "RUN" and "--group keras" in a]
    assert "--no-default-groups" in keras_run and "--require-hashes" in keras_run and "/opt/keras-venv" in keras_run
    (env,) = [a for n, a in instructions if n == "ENV" and "EXPORTFLOW_KERAS_PYTHON" in a]
    assert "EXPORTFLOW_KERAS_PYTHON=/opt/keras-venv/bin/python" in env.split()

    uv = os.environ.get("UV") or "uv"
    exported = subprocess.run(
        [uv, "export", "--frozen", "--no-default-groups", "--group", "keras", "--no-emit-project", "--format", "requirements-txt"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", exported, flags=re.MULTILINE))
    assert pins["tensorflow"] == "2.21.0" and pins["tensorflow-serving-api"] == "2.21.0"
    assert pins["keras"].startswith("3.") and pins["apache-airflow"] in lock_versions()["apache-airflow"]
    assert "pytest" not in pins and "--hash=sha256:" in exported

    monkeypatch.setenv("EXPORTFLOW_KERAS_PYTHON", "/opt/keras-venv/bin/python")  # as the image sets it
    config = load_config(DOCKER / "configs" / "example_keras.yaml")
    assert config.framework == "keras" and config.airflow.queue == "keras"
    assert (config.airflow.runtime, config.airflow.python) == ("external_python", "/opt/keras-venv/bin/python")
    assert config.model_dir.startswith("/data/workspace/") and config.destination.uri.startswith("gs://")
