"""docker-compose.yml, the Dockerfile and the README's "Run with Docker Compose" section agree with
each other and with the server's real flags (no Docker engine needed): the file is parsed with
PyYAML, the flags and environment variables come from `dbforge-server --help`, and the gateway's
environment is run on the real binary, which must start, write the admin key where the README's
command reads it, and accept that key."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple
from urllib.parse import urlsplit

import pytest
import yaml

import dbforge
from dbforge_server import server_binary

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: Dict[str, Any] = COMPOSE["services"]
GATEWAY: Dict[str, Any] = SERVICES["gateway"]


def env_of(service: Dict[str, Any]) -> Dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- KEY=value` form
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def dockerfile() -> Dict[str, List[str]]:
    """The runtime stage's instructions: {"ENV": ["K=V", ...], "USER": [...], ...}."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    stages = re.split(r"^FROM ", text, flags=re.M)
    out: Dict[str, List[str]] = {}
    for line in stages[-1].splitlines()[1:]:
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.setdefault(op.upper(), []).append(rest.strip())
    return out


def server_flags() -> Dict[str, str]:
    """{env var: flag} from `dbforge-server --help`."""
    text = subprocess.run([str(server_binary()), "--help"], capture_output=True, text=True, check=True).stdout
    flags: Dict[str, str] = {}
    flag = None
    for line in text.splitlines():
        m = re.match(r"\s+(--[a-z0-9-]+)", line)
        if m:
            flag = m.group(1)
        m = re.search(r"\[env: (DBFORGE_[A-Z0-9_]+)", line)
        if m and flag:
            flags[m.group(1)] = flag
    assert "DBFORGE_LISTEN" in flags and "DBFORGE_DATA_DIR" in flags, text
    return flags


def readme_compose_section() -> str:
    readme = (REPO / "README.md").read_text()
    m = re.search(r"^## Run with Docker Compose\n(.*?)(?=^## )", readme, re.S | re.M)
    assert m, "README.md has no '## Run with Docker Compose' section"
    return m.group(1)


def readme_key_command() -> Tuple[str, str]:
    """(service, path) of the README's `docker compose exec -T <service> cat <path>`."""
    m = re.search(r"docker compose exec -T (\S+) cat (\S+?)\)?$", readme_compose_section(), re.M)
    assert m, "the README's compose section does not show how to read the admin key"
    return m.group(1), m.group(2)


def gateway_env() -> Dict[str, str]:
    """What the gateway process sees: the image's ENV, then the compose environment."""
    env: Dict[str, str] = {}
    for item in dockerfile().get("ENV", []):
        for pair in shlex.split(item):
            k, _, v = pair.partition("=")
            env[k] = v
    env.update(env_of(GATEWAY))
    return env


def test_compose_declares_the_gateway_and_its_three_backends() -> None:
    assert set(SERVICES) == {"gateway", "postgres", "mysql", "redis"}
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert SERVICES["mysql"]["image"].startswith("mariadb:")
    assert SERVICES["redis"]["image"].startswith("redis:")
    assert GATEWAY["build"]["dockerfile"] == "Dockerfile"
    assert (REPO / GATEWAY["build"]["context"] / "Dockerfile").is_file()
    for name in ("postgres", "mysql", "redis"):
        assert GATEWAY["depends_on"][name]["condition"] == "service_healthy"
        assert SERVICES[name]["healthcheck"]["test"], name
    # Every named volume that a service mounts is declared.
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in COMPOSE["volumes"], f"{name}: volume {source} is not declared"


def test_every_gateway_variable_is_a_real_server_flag() -> None:
    flags = server_flags()
    env = gateway_env()
    unknown = sorted(k for k in env if k.startswith("DBFORGE_") and k not in flags)
    assert not unknown, f"not variables of dbforge-server --help: {unknown}"
    assert env["DBFORGE_LOG_FORMAT"] in ("text", "json")
    # A non-loopback address, so that the published port reaches it; the server refuses
    # --insecure-no-auth there, so authentication must stay on.
    assert env["DBFORGE_LISTEN"].startswith("0.0.0.0:")
    assert "DBFORGE_INSECURE_NO_AUTH" not in env
    entrypoint = json.loads(dockerfile()["ENTRYPOINT"][-1])
    # Settings go in the environment, where the check above sees them, not in extra arguments.
    assert entrypoint == ["/usr/local/bin/dbforge-server"]
    assert "command" not in GATEWAY and "entrypoint" not in GATEWAY


def test_the_published_port_and_health_check_are_the_listen_port() -> None:
    port = gateway_env()["DBFORGE_LISTEN"].rsplit(":", 1)[1]
    assert GATEWAY["ports"] == [f"{port}:{port}"]
    assert dockerfile()["EXPOSE"] == [port]
    # The health check asks grpc.health.v1 through the binary, which reads DBFORGE_LISTEN (the
    # published port) from the same environment; the image's HEALTHCHECK does the same.
    assert GATEWAY["healthcheck"]["test"] == [
        "CMD",
        "/usr/local/bin/dbforge-server",
        "--health-check",
    ]
    help_text = subprocess.run([str(server_binary()), "--help"], capture_output=True, text=True, check=True).stdout
    assert "--health-check" in help_text
    healthcheck = dockerfile()["HEALTHCHECK"][0]
    assert healthcheck.endswith('CMD ["/usr/local/bin/dbforge-server", "--health-check"]'), healthcheck
    assert GATEWAY["restart"] == "unless-stopped"


def test_backend_urls_name_the_services_and_their_credentials() -> None:
    env = gateway_env()
    pg = urlsplit(env["DBFORGE_POSTGRES_URL"])
    pg_env = env_of(SERVICES["postgres"])
    assert (pg.scheme, pg.hostname, pg.port) == ("postgres", "postgres", 5432)
    assert (pg.username, pg.password) == (pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"])
    my = urlsplit(env["DBFORGE_MYSQL_URL"])
    assert (my.scheme, my.hostname, my.port) == ("mysql", "mysql", 3306)
    assert (my.username, my.password) == ("root", env_of(SERVICES["mysql"])["MARIADB_ROOT_PASSWORD"])
    rd = urlsplit(env["DBFORGE_REDIS_URL"])
    assert (rd.scheme, rd.hostname, rd.port) == ("redis", "redis", 6379)


def test_the_readme_reads_the_admin_key_from_the_gateway_volume() -> None:
    service, path = readme_key_command()
    assert service == "gateway"
    data_dir = gateway_env()["DBFORGE_DATA_DIR"]
    assert path == f"{data_dir}/admin.key"
    # The volume is mounted at the data directory, which the image declares as a volume.
    mounts = {v.split(":", 1)[1] for v in GATEWAY["volumes"]}
    assert data_dir in mounts
    assert data_dir in json.loads(dockerfile()["VOLUME"][-1])
    # `exec` runs as the image's user, who wrote the key (mode 0600): the compose file must not
    # run the gateway as anyone else.
    assert dockerfile()["USER"] == ["dbforge"] and "user" not in GATEWAY
    section = readme_compose_section()
    assert "docker compose up" in section and "docker compose down" in section


@pytest.fixture
def compose_gateway() -> Iterator[Tuple[Path, int]]:
    """The real binary with the gateway's environment, the data directory moved to a temporary
    folder and port 0; the backends' host names do not resolve here, which it must survive."""
    with tempfile.TemporaryDirectory(prefix="dbforge-compose-") as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DBFORGE_")}
        env.update(gateway_env())
        env["DBFORGE_DATA_DIR"] = data_dir
        env["DBFORGE_LISTEN"] = "0.0.0.0:0"
        proc = subprocess.Popen(
            [str(server_binary())], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            assert proc.stdout is not None
            port = None
            deadline = time.monotonic() + 60
            lines = []
            while port is None and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
                record = json.loads(line)  # DBFORGE_LOG_FORMAT=json: one object per line
                if record["fields"].get("message") == "dbforge-server listening":
                    port = int(record["fields"]["addr"].rsplit(":", 1)[1])
            assert port is not None, "".join(lines)
            yield Path(data_dir), port
        finally:
            # Killed, not stopped: a graceful stop waits ~5 s on the backends that never resolved.
            proc.kill()
            proc.wait(timeout=20)
            if proc.stdout is not None:
                proc.stdout.close()


def test_the_gateway_environment_starts_and_writes_the_key_the_readme_reads(
    compose_gateway: Tuple[Path, int],
) -> None:
    data_dir, port = compose_gateway
    _, path = readme_key_command()
    key_file = data_dir / Path(path).name
    assert (key_file.stat().st_mode & 0o777) == 0o600
    key = key_file.read_text().strip()
    with dbforge.Client(f"http://127.0.0.1:{port}", api_key=key) as client:
        assert client.who_am_i().admin
    with dbforge.Client(f"http://127.0.0.1:{port}") as anonymous:
        with pytest.raises(dbforge.Unauthenticated):
            anonymous.list_databases()


def test_the_build_context_leaves_out_local_build_output() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    for pattern in ("target", "**/node_modules", ".venv", ".git"):
        assert pattern in ignored, f".dockerignore lacks {pattern}"
