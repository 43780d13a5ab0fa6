"""The hub's Dockerfile, entrypoint and compose.yaml, checked without Docker (it cannot run here).

- the image installs Anpi with the README's command (scripts/test, which the README tells
  people to run) — same launcher and options, the project itself, minus `-e` and the test extra;
- multi-stage, runs as a non-root USER, has a HEALTHCHECK that hits the hub's /healthz;
- the entrypoint refuses to start without a PostgreSQL URL (run here for real), and with one it
  starts `anpi hub serve` on the configured host/port and its healthcheck mode sees /healthz;
- compose.yaml parses and puts PostgreSQL (named volume, healthcheck) beside the hub.

The Dockerfile is parsed by hand (continuations + instruction words, ~15 lines) rather than by
dockerfile-parse, to keep a test dependency out of pyproject for so little.
"""

from __future__ import annotations

import fnmatch
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "packaging" / "hub-entrypoint.sh"


# --- parsing -------------------------------------------------------------------------------------

def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; comments dropped, backslash continuations joined."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, args = buf.partition(" ")
        out.append((word.upper(), args.strip()))
        buf = ""
    return out


def stages(instrs: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instrs:
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def pip_installs(shell_text: str) -> list[list[str]]:
    """Every `… pip install …` command in a piece of shell, as tokens from `pip` on."""
    found = []
    for line in shell_text.replace("\\\n", " ").splitlines():
        for part in line.split("&&"):
            try:
                toks = shlex.split(part, comments=True)
            except ValueError:  # a console block's output line ("the laptop's chain …"), not a command
                continue
            if "pip" in toks and "install" in toks[toks.index("pip"):]:
                found.append(toks[toks.index("pip"):])
            elif any(t.endswith("/pip") or t in ("pip3",) for t in toks) and "install" in toks:
                i = next(i for i, t in enumerate(toks) if t.endswith("/pip") or t == "pip3")
                found.append(["pip", *toks[i + 1:]])
    return found


def normalise(cmd: list[str]) -> tuple[tuple[str, ...], list[str], list[str]]:
    """(options without -e, project targets without extras, extras)."""
    assert cmd[:2] == ["pip", "install"], cmd
    opts, targets, extras = [], [], []
    for t in cmd[2:]:
        if t in ("-e", "--editable"):
            continue
        if t.startswith("-"):
            opts.append(t)
        else:
            base, _, ex = t.partition("[")
            targets.append(base)
            extras += [e for e in ex.rstrip("]").split(",") if e]
    return tuple(sorted(opts)), targets, extras


def readme_install_commands() -> list[list[str]]:
    """The install command the README documents: its own pip lines and scripts/test, which it says installs everything."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "./scripts/test" in readme, "the README no longer points at scripts/test for installing"
    cmds = pip_installs((ROOT / "scripts" / "test").read_text(encoding="utf-8"))
    blocks = [b for i, b in enumerate(readme.split("```")) if i % 2 == 1]
    cmds += [c for b in blocks for c in pip_installs(b)]
    assert cmds, "no pip install command found in scripts/test or the README"
    return cmds


# --- the Dockerfile ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def instrs() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text(encoding="utf-8"))


def test_installs_with_the_readme_command(instrs: list[tuple[str, str]]) -> None:
    docker_cmds = [c for word, args in instrs if word == "RUN" for c in pip_installs(args)]
    assert len(docker_cmds) == 1, docker_cmds
    d_opts, d_targets, d_extras = normalise(docker_cmds[0])
    assert d_targets == ["."] and d_extras == [], "the image installs the project itself, without test tools"
    for cmd in readme_install_commands():
        r_opts, r_targets, _extras = normalise(cmd)
        assert (d_opts, d_targets) == (r_opts, r_targets), f"Dockerfile {docker_cmds[0]} vs README {cmd}"
    # and through `python -m pip`, like scripts/test (not a bare `pip` of unknown interpreter)
    run_line = next(args for word, args in instrs if word == "RUN" and "pip install" in args)
    assert "-m pip install" in run_line


def test_multi_stage_non_root_with_healthcheck(instrs: list[tuple[str, str]]) -> None:
    st = stages(instrs)
    assert len(st) >= 2, "builder and runtime stages"
    assert any(" as builder" in args.lower() for word, args in instrs if word == "FROM")
    final = st[-1]
    assert any(w == "COPY" and "--from=builder" in a for w, a in final), "runtime copies the builder's result"
    assert not any(w == "RUN" and "pip install" in a for w, a in final), "nothing is built in the runtime stage"
    users = [a for w, a in final if w == "USER"]
    assert users, "no USER in the runtime stage"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]
    health = [a for w, a in final if w == "HEALTHCHECK"]
    assert len(health) == 1 and "CMD" in health[0] and "NONE" not in health[0].upper().split()
    assert "healthcheck" in health[0]
    assert "/healthz" in ENTRYPOINT.read_text(encoding="utf-8")
    entry = [a for w, a in final if w == "ENTRYPOINT"]
    assert entry and "anpi-hub-entrypoint" in entry[-1]
    env = " ".join(a for w, a in instrs if w == "ENV")
    assert "ANPI_HUB_DATABASE_URL" not in env, "the database URL must come from the operator, never a default"
    for name in ("ANPI_HUB_HOST", "ANPI_HUB_PORT"):
        assert name in env


def test_copied_files_exist_and_are_not_dockerignored(instrs: list[tuple[str, str]]) -> None:
    ignore = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")]
    for must in (".git", ".venv", "tests", "dist"):
        assert must in ignore, f".dockerignore should exclude {must}"
    for word, args in instrs:
        if word != "COPY" or "--from=" in args:
            continue
        srcs = [t for t in shlex.split(args) if not t.startswith("--")][:-1]
        for src in srcs:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
            assert not any(fnmatch.fnmatch(src, pat) for pat in ignore), f"COPY {src} is excluded by .dockerignore"


# --- the entrypoint, for real ----------------------------------------------------------------------

def entrypoint(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=timeout)


BASE_ENV = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": "/tmp"}


@pytest.mark.parametrize("url", [None, "", "sqlite:////tmp/hub.db", "mysql://x@y/z"])
def test_entrypoint_refuses_without_a_postgres_url(url: str | None) -> None:
    env = dict(BASE_ENV)
    if url is not None:
        env["ANPI_HUB_DATABASE_URL"] = url
    for args in ((), ("serve",), ("anpi", "hub", "status")):
        res = entrypoint(env, *args)
        assert res.returncode == 78, (args, res.stdout, res.stderr)
        assert "ANPI_HUB_DATABASE_URL" in res.stderr and "refusing to start" in res.stderr
        assert "Traceback" not in res.stderr


@pytest.mark.postgres
def test_entrypoint_serves_the_hub_and_healthcheck_sees_it(tmp_path: Path) -> None:
    from tests.packaging.binary import free_port
    from tests.sync.conftest import drop_pg_schema, new_pg_schema, require_pg

    require_pg()
    schema, url = new_pg_schema()
    port = free_port()
    env = {**BASE_ENV, "HOME": str(tmp_path), "ANPI_HUB_DATABASE_URL": url, "ANPI_HUB_HOST": "127.0.0.1",
           "ANPI_HUB_PORT": str(port)}
    assert entrypoint(env, "healthcheck").returncode == 1, "healthcheck must fail while nothing listens"
    log = (tmp_path / "hub.log").open("wb")
    proc = subprocess.Popen(["sh", str(ENTRYPOINT)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            res = entrypoint(env, "healthcheck")
            if res.returncode == 0:
                break
            assert proc.poll() is None, (tmp_path / "hub.log").read_text(errors="replace")
            assert time.monotonic() < deadline, "hub did not become healthy"
            time.sleep(0.3)
        # `docker compose run hub anpi hub status --json` goes through the same entrypoint
        status = entrypoint(env, "anpi", "hub", "status", "--json")
        assert status.returncode == 0, status.stderr
        assert '"devices": 0' in status.stdout
    finally:
        proc.send_signal(signal.SIGTERM)  # `exec` made the hub PID 1's replacement: it gets the signal itself
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        drop_pg_schema(schema)


# --- compose.yaml ----------------------------------------------------------------------------------

def test_compose_has_postgres_beside_the_hub() -> None:
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with the test tools; minimal fallback
        for needle in ("services:", "  db:", "  hub:", "condition: service_healthy", "healthcheck:", "volumes:"):
            assert needle in text
        return
    doc = yaml.safe_load(text)
    services = doc["services"]
    assert set(services) >= {"db", "hub"}
    db, hub = services["db"], services["hub"]
    assert db["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")[0]
    assert volume in (doc.get("volumes") or {}), "PostgreSQL data lives in a named volume"
    assert hub["depends_on"]["db"]["condition"] == "service_healthy"
    assert hub["build"] == "." or hub["build"].get("context") == "."
    url = hub["environment"]["ANPI_HUB_DATABASE_URL"]
    assert url.startswith("postgresql://") and "@db:5432/" in url
    assert str(hub["environment"]["ANPI_HUB_PORT"]) in hub["ports"][0]
    assert "ANPI_DB_PASSWORD" in db["environment"]["POSTGRES_PASSWORD"], "no password in the file itself"
