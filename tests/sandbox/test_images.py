"""Image recipes, content-hash tags, reuse, failing steps, and CA bundles."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import images
from sandbox.base import SandboxError
from sandbox.certs import CONTAINER_BUNDLE, combined_bundle
from sandbox.images import BuildLog, ImageRecipe, build_image, run_and_commit
from tests.fakes.certs import CA_PEM

PEM = CA_PEM


def test_tag_is_a_content_hash(tmp_path: Path) -> None:
    bundle = tmp_path / "corp.pem"
    bundle.write_bytes(PEM)
    plain = ImageRecipe()
    assert plain.tag == ImageRecipe().tag
    assert plain.tag != ImageRecipe(packages=[*plain.packages, "curl"]).tag
    assert plain.tag != ImageRecipe(release="trixie").tag
    assert plain.tag != ImageRecipe(ca_bundle=bundle).tag
    assert plain.tag == ImageRecipe(mirror="http://mirror.example/debian").tag
    assert plain.tag != ImageRecipe(user=None).tag  # the sandbox's user is part of the image


def test_bad_ca_bundle_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(SandboxError, match="not a PEM CA bundle"):
        ImageRecipe(ca_bundle=bad).tag
    with pytest.raises(SandboxError, match="cannot read"):
        combined_bundle(tmp_path / "missing.pem")


def test_a_ca_bundle_without_a_certificate_is_bad_input_exit_2(tmp_path: Path) -> None:
    """The user named the file: a usage error (2), not a broken environment (3)."""
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    done = subprocess.run([sys.executable, "-c", "from agent.cli import main; main()", "sandbox", "build",
                           "--ca-bundle", str(empty)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"error: --ca-bundle: {empty} is not a PEM CA bundle (no 'BEGIN CERTIFICATE' block)"


def test_a_ca_bundle_openssl_cannot_load_is_refused_before_any_build(tmp_path: Path) -> None:
    """A garbage block between the PEM markers, alone or after a good certificate, is not baked into an image."""
    garbage = b"-----BEGIN CERTIFICATE-----\nnotbase64!!\n-----END CERTIFICATE-----\n"
    for name, data in (("garbage.pem", garbage), ("mixed.pem", PEM + garbage)):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SandboxError, match=f"{name}: not a usable CA bundle"):
            ImageRecipe(ca_bundle=tmp_path / name).tag
        done = subprocess.run([sys.executable, "-c", "from agent.cli import main; main()", "sandbox", "build",
                               "--ca-bundle", str(tmp_path / name)], capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[2])
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"error: --ca-bundle: {tmp_path / name}: not a usable CA bundle (")
        assert done.stderr.count("\n") == 1


def test_combined_bundle_appends_to_system(tmp_path: Path) -> None:
    extra = tmp_path / "corp.pem"
    extra.write_bytes(PEM)
    path = combined_bundle(extra, cache_dir=tmp_path / "cache")
    assert path is not None and path.read_bytes().endswith(PEM)
    assert path.stat().st_size > len(PEM)  # the system bundle comes first
    assert combined_bundle(extra, cache_dir=tmp_path / "cache") == path


@pytest.mark.docker
def test_existing_image_is_reused_without_building(docker_client, sandbox_image, monkeypatch) -> None:
    def explode(*args, **kwargs):
        raise AssertionError("should not build")

    monkeypatch.setattr(images, "debootstrap_import", explode)
    monkeypatch.setattr(images, "dockerfile_build", explode)
    assert build_image(ImageRecipe(), docker_client, offline=True) == sandbox_image


@pytest.mark.docker
def test_failed_step_names_the_step_and_shows_the_log(docker_client, sandbox_image) -> None:
    log = BuildLog("moe-agent-test:failing")
    with pytest.raises(SandboxError) as info:
        run_and_commit(docker_client, sandbox_image, "echo preparing; echo boom >&2; exit 7",
                       "moe-agent-test:failing", log=log, step="install deps")
    message = str(info.value)
    assert "install deps" in message and "exit code 7" in message and "boom" in message
    assert "boom" in log.path.read_text()


@pytest.mark.docker
def test_step_timeout_is_enforced(docker_client, sandbox_image) -> None:
    log = BuildLog("moe-agent-test:slow")
    with pytest.raises(SandboxError, match="timed out"):
        run_and_commit(docker_client, sandbox_image, "sleep 60", "moe-agent-test:slow", log=log, step="slow",
                       timeout=2)


@pytest.mark.docker
def test_run_and_commit_adds_files_and_a_layer(docker_client, sandbox_image) -> None:
    tag = "moe-agent-test:layer"
    log = BuildLog(tag)
    run_and_commit(docker_client, sandbox_image, "cat /opt/in.txt > /opt/out.txt", tag, log=log, step="layer",
                   files={"/opt/in.txt": b"payload"}, changes=["ENV LAYERED=1"], user="root")
    try:
        # The step ran as root (/opt is root's); the image still runs as its own user.
        assert docker_client.images.get(tag).attrs["Config"]["User"] == "agent"
        out = subprocess.run(["docker", "run", "--rm", tag, "bash", "-c", "cat /opt/out.txt; echo $LAYERED"],
                             capture_output=True, text=True, timeout=60)
        assert out.stdout == "payload1\n"
    finally:
        docker_client.images.remove(tag, force=True)


@pytest.mark.docker
def test_build_steps_are_confined_like_the_sandbox(docker_client, sandbox_image, monkeypatch) -> None:
    """Whoever wrote the script (a recipe, a repository's setup): no capabilities, no privilege gain, limits."""
    tag = "moe-agent-test:confined"
    monkeypatch.setenv("MOE_HOST_SECRET", "host-only-value")
    probe = ("grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status > /opt/probe; "
             "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max >> /opt/probe 2>/dev/null || "
             "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes >> /opt/probe; "
             "env >> /opt/probe; ls /var/run/docker.sock /run/docker.sock >> /opt/probe 2>&1; "
             "ls /sys/class/net >> /opt/probe")
    run_and_commit(docker_client, sandbox_image, probe, tag, log=BuildLog(tag), step="probe", user="root",
                   environment={"GIVEN": "1"}, memory="1g", pids_limit=321)
    try:
        out = subprocess.run(["docker", "run", "--rm", "--network", "none", tag, "cat", "/opt/probe"],
                             capture_output=True, text=True, timeout=60).stdout
    finally:
        docker_client.images.remove(tag, force=True)
    assert re.search(r"CapEff:\s+0{16}", out) and re.search(r"CapBnd:\s+0{16}", out), out
    assert re.search(r"NoNewPrivs:\s+1", out), out
    assert "\n321\n" in out and str(1024 ** 3) in out, out
    assert "GIVEN=1" in out and "host-only-value" not in out, out
    assert "No such file" in out and "docker.sock\n" not in out.replace("No such file", ""), out
    assert out.rstrip().endswith("lo"), out  # no network but loopback


@pytest.mark.docker
def test_a_build_step_may_not_mount_the_docker_socket(docker_client, sandbox_image) -> None:
    with pytest.raises(SandboxError, match="may not see the Docker socket"):
        run_and_commit(docker_client, sandbox_image, "true", "moe-agent-test:socket", log=BuildLog("moe-agent-test:s"),
                       step="socket", volumes={"/var/run": {"bind": "/host-run", "mode": "ro"}})


@pytest.mark.docker
def test_ca_bundle_is_mounted_and_trusted_variables_set(make_sandbox, tmp_path: Path) -> None:
    extra = tmp_path / "corp.pem"
    extra.write_bytes(PEM)
    box = make_sandbox(ca_bundle=extra)
    assert box.run("echo $SSL_CERT_FILE $PIP_CERT").output.split() == [CONTAINER_BUNDLE] * 2
    assert box.read_file(CONTAINER_BUNDLE).endswith(PEM)
    assert box.run(f"touch {CONTAINER_BUNDLE}").exit_code != 0  # read-only


@pytest.mark.docker
def test_default_image_has_the_tools_the_agent_needs(box) -> None:
    for tool in ("bash", "git", "python3", "rg", "patch", "find", "base64"):
        assert box.run(f"command -v {tool}").ok, tool
    assert box.run("git config --system --get safe.directory").output.strip() == "*"


def test_concurrent_builds_of_one_tag_build_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second builder of a missing tag waits for the first and reuses its image."""
    import threading

    from docker.errors import ImageNotFound

    built: list[str] = []
    present = threading.Event()

    class Images:
        def get(self, tag: str) -> object:
            if present.is_set():
                return object()
            raise ImageNotFound(tag)

    class Client:
        images = Images()

    started = threading.Event()

    def slow_build(recipe: ImageRecipe, client: object, tag: str, **_: object) -> str:
        started.set()
        built.append(tag)
        threading.Event().wait(0.3)
        present.set()
        return tag

    monkeypatch.setattr(images, "_build", slow_build)
    recipe = ImageRecipe(packages=["python3", "lock-test"])
    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(build_image(recipe, Client())))
    first.start()
    started.wait(5)
    results.append(build_image(recipe, Client()))
    first.join()
    assert built == [recipe.tag]
    assert results == [recipe.tag, recipe.tag]


def test_intermediate_image_in_use_is_left_alone() -> None:
    from docker.errors import APIError

    class Images:
        def remove(self, tag: str, noprune: bool) -> None:
            raise APIError("409 Conflict: image is being used by running container")

    class Client:
        images = Images()

    images.remove_image(Client(), "moe-agent-sandbox-rootfs:x")
