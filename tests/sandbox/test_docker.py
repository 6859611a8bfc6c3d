"""Starting containers: isolation, limits, repository placement, files, cleanup, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sandbox import cleanup
from sandbox.base import ImageMissing, SandboxError
from sandbox.docker import SHELL_WRITE_BYTES, DockerSandbox, SandboxSpec, connect, explain_docker_error, start_sandbox

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "mod.py").write_text("x = 1\n")
    (repo / "README").write_text("hello\n")
    return repo


def test_bind_mount_shares_the_host_directory(make_sandbox, tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    repo.chmod(0o777)  # a host directory keeps its host owners: the sandbox's user writes where they let it
    box = make_sandbox(mount=repo)
    assert box.run("cat pkg/mod.py").output == "x = 1\n"
    box.run("echo new > created.txt")
    assert (repo / "created.txt").read_text() == "new\n"


def test_copy_places_a_private_copy(make_sandbox, tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    box = make_sandbox(copy_from=repo)
    assert box.run("cat README").output == "hello\n"
    box.run("echo changed > README")
    assert (repo / "README").read_text() == "hello\n"


def test_isolation_defaults(make_sandbox, docker_client, monkeypatch) -> None:
    monkeypatch.setenv("MOE_SECRET_TOKEN", "do-not-leak")
    box = make_sandbox(env={"GIVEN": "1"})
    env = box.run("env").output
    assert "do-not-leak" not in env and "GIVEN=1" in env
    assert box.run("ls /sys/class/net").output.split() == ["lo"]
    assert box.run("test -e /var/run/docker.sock").exit_code != 0
    info = docker_client.api.inspect_container(box.id)
    host = info["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["NanoCpus"] == 2_000_000_000 and host["Memory"] == 4 * 1024**3 and host["PidsLimit"] == 1024
    assert info["Config"]["Labels"]["moe-agent.run"] == "pytest"
    assert not any("docker.sock" in m.get("Source", "") for m in info["Mounts"])


def test_network_is_opt_in(make_sandbox, docker_client) -> None:
    box = make_sandbox(network=True)
    assert "eth0" in box.run("ls /sys/class/net").output.split()


def test_offline_sandbox_has_loopback_and_localhost(make_sandbox, docker_client) -> None:
    """Network off means no network at all for Docker (no libnetwork hook), yet localhost works."""
    box = make_sandbox()
    assert docker_client.api.inspect_container(box.id)["Config"].get("NetworkDisabled") is True
    assert box.run("getent hosts localhost").ok
    served = box.run(
        "python3 -c 'import socket; s = socket.socket(); s.bind((\"localhost\", 0)); s.listen(); "
        "c = socket.create_connection(s.getsockname(), timeout=5); print(\"connected\")'"
    )
    assert served.output.strip() == "connected", served.output
    assert box.run("getent hosts pypi.org").exit_code != 0  # no name server, so no waiting on one
    # A sandbox run as root (the SWE-bench images) may add names: the requests recipe's services do.
    root = make_sandbox(user="root")
    assert root.run("getent hosts localhost").ok
    assert root.run("echo '127.0.0.1 httpbin.org' >> /etc/hosts && getent hosts httpbin.org").ok


def test_an_image_of_another_unprivileged_user_names_localhost_too(make_sandbox, docker_client, sandbox_image) -> None:
    maker = docker_client.containers.create(sandbox_image, command=["true"])
    try:
        image = maker.commit(repository="moe-agent-test-nobody", tag="latest", changes=["USER nobody"])
    finally:
        maker.remove(force=True)
    try:
        box = make_sandbox(image="moe-agent-test-nobody:latest", workdir="/tmp")
        assert box.run("id -un").output.strip() == "nobody"
        assert box.run("getent hosts localhost").ok
        box.close()
    finally:
        docker_client.images.remove(image.id, force=True)


def test_limits_are_configurable(make_sandbox, docker_client) -> None:
    box = make_sandbox(cpus=0.5, memory="256m", pids_limit=64)
    host = docker_client.api.inspect_container(box.id)["HostConfig"]
    assert (host["NanoCpus"], host["Memory"], host["PidsLimit"]) == (500_000_000, 256 * 1024**2, 64)


def test_files_read_write_stat_list(box: DockerSandbox) -> None:
    box.write_file("dir/sub/a.txt", b"line1\r\nline2")
    assert box.read_file("dir/sub/a.txt") == b"line1\r\nline2"
    assert box.read_file("/testbed/dir/sub/a.txt") == b"line1\r\nline2"
    binary = bytes(range(256)) * 100
    box.write_file("bin.dat", binary)
    assert box.read_file("bin.dat") == binary
    stat = box.stat("dir/sub/a.txt")
    assert stat.exists and not stat.is_dir and stat.size == 12
    assert box.stat("dir").is_dir
    assert not box.stat("missing.txt").exists
    box.write_file(".hidden/x", b"")
    assert box.list_dir(".", depth=2) == ["bin.dat", "dir/", "dir/sub/"]
    assert box.list_dir("dir", depth=3) == ["sub/", "sub/a.txt"]
    with pytest.raises(FileNotFoundError):
        box.read_file("missing.txt")
    with pytest.raises(IsADirectoryError):
        box.read_file("dir")


def test_write_is_atomic_and_keeps_mode(box: DockerSandbox) -> None:
    box.run("printf '#!/bin/sh\\necho v1\\n' > run.sh && chmod 755 run.sh")
    box.write_file("run.sh", b"#!/bin/sh\necho v2\n")
    assert box.run("./run.sh").output == "v2\n"
    assert box.stat("run.sh").mode & 0o777 == 0o755
    assert box.run("ls -a | grep -c moe- || true").output.strip() == "0"


def test_neither_shell_costs_an_exec(box: DockerSandbox, docker_client) -> None:
    box.write_file("a.txt", b"one")
    assert box.read_file("a.txt") == b"one" and box.stat("a.txt").size == 3
    assert box.run("cd /tmp && echo out && echo err >&2").output == "out\nerr\n"
    assert box.run("timeout 0.1 sleep 5", timeout=10).exit_code == 124
    # The internal shell is the container's own bash; the model's shell is its child.
    assert (docker_client.api.inspect_container(box.id)["ExecIDs"] or []) == []
    assert box._service is not None
    model_parent = box.run("cut -d' ' -f4 /proc/$PPID/stat").output.strip()
    assert model_parent == str(box._service._pid)  # the model's bash < the spawning subshell < the internal bash
    with pytest.raises(IsADirectoryError):
        box.write_file("/testbed", b"x")  # the script's early `exit` ran in a subshell...
    assert box._service.restarts == 0 and box.shell.restarts == 0  # ...so the internal shell lives on


def test_a_killed_internal_shell_comes_back_through_exec(box: DockerSandbox) -> None:
    box.run("cd /tmp && export KEPT=1")
    box.write_file("a.txt", b"before")
    assert box._service is not None
    killed = box.run(f"kill -9 {box._service._pid}")
    box.write_file("a.txt", b"after")
    assert box.read_file("a.txt") == b"after"
    assert box._service.restarts == 1  # the container did not stop with it
    # The model's shell lost its parent's FIFO with it: it comes back where it was, and
    # whether that shows at the kill or at the next command, it is said.
    result = box.run("pwd; echo ${KEPT:-unset}")
    assert result.output == "/tmp\nunset\n"
    said = [note for r in (killed, result) if r.restarted for note in r.notes]
    assert any("restarted in /tmp" in note for note in said)
    assert box.run("echo again").output == "again\n" and box.shell.restarts == 1


def test_an_internal_command_sent_to_a_shell_already_dead_is_run_again(box: DockerSandbox) -> None:
    box.write_file("a.txt", b"before")
    assert box._service is not None
    pid = box._service._pid
    # The parent that prints the gone-line is held back, so the next command goes to the dead shell
    # before its death shows; the death then shows with a code (137) instead of an answer.
    held = box.container.exec_run(["sh", "-c", f"p=$(cut -d' ' -f4 /proc/{pid}/stat); kill -STOP $p; kill -9 {pid}; "
                                   "(sleep 0.5; kill -CONT $p) >/dev/null 2>&1 &"])
    assert held.exit_code == 0, held.output
    box.write_file("a.txt", b"after")
    assert box.read_file("a.txt") == b"after" and box._service.restarts == 1


@pytest.mark.parametrize("setup", ["large files", "no base64 in the image"])
def test_files_travel_by_archive_when_the_shell_cannot_carry_them(box: DockerSandbox, monkeypatch, setup) -> None:
    if setup == "large files":
        monkeypatch.setattr("sandbox.docker.SHELL_READ_BYTES", 1000)
        monkeypatch.setattr("sandbox.docker.SHELL_WRITE_BYTES", 1000)
    else:
        box.run("rm $(command -v base64)")
    data = bytes(range(256)) * 20
    box.run("printf x > keep.sh && chmod 750 keep.sh")
    box.write_file("keep.sh", data)
    box.write_file("new/dir/file.bin", data)
    assert box.read_file("keep.sh") == data and box.read_file("new/dir/file.bin") == data
    assert box.stat("keep.sh").mode & 0o777 == 0o750
    assert box.run("ls -a | grep -c moe- || true").output.strip() == "0"


def test_symlink_stat_reports_target(box: DockerSandbox) -> None:
    box.run("ln -s /etc/passwd link")
    stat = box.stat("link")
    assert stat.is_symlink and stat.link_target == "/etc/passwd"


def test_close_removes_the_container(docker_client, sandbox_image) -> None:
    box = start_sandbox(SandboxSpec(image=sandbox_image, run_id="pytest-close"), docker_client)
    cid = box.id
    assert cid in cleanup.live()
    box.close()
    assert cid not in cleanup.live()
    assert not docker_client.containers.list(all=True, filters={"id": cid}, ignore_removed=True)


def test_missing_image_is_a_clear_error(docker_client) -> None:
    with pytest.raises(ImageMissing, match="agent sandbox build"):
        start_sandbox(SandboxSpec(image="moe-agent-no-such-image:0"), docker_client)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_signals_remove_this_process_containers(docker_client, sandbox_image, signame) -> None:
    run_id = f"pytest-signal-{signame}-{os.getpid()}"
    script = textwrap.dedent(f"""
        import sys, time
        from sandbox.docker import SandboxSpec, start_sandbox
        box = start_sandbox(SandboxSpec(image={sandbox_image!r}, run_id={run_id!r}))
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=ROOT, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert cleanup.leftovers(docker_client, run_id)
        proc.send_signal(getattr(__import__("signal"), signame))
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert cleanup.leftovers(docker_client, run_id) == []


def gone_owner() -> dict[str, str]:
    """Owner labels of a process on this host that has ended (as after `kill -9`)."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    return cleanup.owner_labels() | {"moe-agent.pid": str(ended.pid), "moe-agent.pid_start": "1"}


def orphan(docker_client, image: str, run_id: str, owner: dict[str, str], age: float = 0.0):
    """A labelled container that never ends by itself, as one started by code without a stdin watcher."""
    return docker_client.containers.run(
        image, command=["sleep", "infinity"], detach=True, network_mode="none",
        labels={"moe-agent": "1", "moe-agent.run": run_id, "moe-agent.created": str(int(time.time() - age)), **owner},
    )


def test_prune_removes_leftovers_by_label_and_age(docker_client, sandbox_image) -> None:
    run_id = f"pytest-prune-{os.getpid()}"
    container = orphan(docker_client, sandbox_image, run_id, gone_owner(), age=7200)
    try:
        assert cleanup.prune(docker_client, older_than=3 * 3600, run_id=run_id) == []
        removed = cleanup.prune(docker_client, older_than=3600, run_id=run_id)
        assert [item.id for item in removed] == [container.id]
        assert cleanup.leftovers(docker_client, run_id) == []
    finally:
        subprocess.run(["docker", "rm", "-f", container.id], capture_output=True)


def test_cli_ls_and_prune(docker_client, sandbox_image) -> None:
    run_id = f"pytest-cli-{os.getpid()}"
    box = start_sandbox(SandboxSpec(image=sandbox_image, run_id=run_id), docker_client)
    cleanup.forget(box.id)  # look like another process's leftover
    listed = subprocess.run([sys.executable, "-m", "agent", "sandbox", "ls", "--json"],
                            capture_output=True, text=True, cwd=ROOT)
    assert listed.returncode == 0 and run_id in listed.stdout
    pruned = subprocess.run([sys.executable, "-m", "agent", "sandbox", "prune", "--run", run_id],
                            capture_output=True, text=True, cwd=ROOT)
    assert pruned.returncode == 0 and "removed 0 containers" in pruned.stdout, pruned.stderr
    assert "kept 1 whose run is alive" in pruned.stdout  # its owner (this test) is alive
    assert [item.owner for item in cleanup.leftovers(docker_client, run_id)] == ["alive"]
    pruned = subprocess.run([sys.executable, "-m", "agent", "sandbox", "prune", "--run", run_id, "--force"],
                            capture_output=True, text=True, cwd=ROOT)
    assert pruned.returncode == 0 and "removed 1 container" in pruned.stdout
    assert cleanup.leftovers(docker_client, run_id) == []


def test_a_sandbox_whose_owner_is_killed_ends_by_itself(docker_client, sandbox_image) -> None:
    run_id = f"pytest-owner-killed-{os.getpid()}"
    script = textwrap.dedent(f"""
        import time
        from sandbox.docker import SandboxSpec, start_sandbox
        box = start_sandbox(SandboxSpec(image={sandbox_image!r}, run_id={run_id!r}))
        print(box.run("echo ready").output.strip(), flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=ROOT, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert [item.owner for item in cleanup.leftovers(docker_client, run_id)] == ["alive"]
        proc.kill()  # SIGKILL: no handler, no atexit
        proc.wait(timeout=30)
        deadline = time.monotonic() + 120  # a bound against waiting forever, not a speed target
        while cleanup.leftovers(docker_client, run_id) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert cleanup.leftovers(docker_client, run_id) == []
    finally:
        proc.kill()
        subprocess.run(f"docker ps -aq --filter label=moe-agent.run={run_id} | xargs -r docker rm -f", shell=True,
                       capture_output=True)


def test_a_new_run_reaps_orphans_of_dead_runs_and_doctor_lists_them(docker_client, sandbox_image) -> None:
    from agent.doctor import leftover_check

    run_id = f"pytest-reap-{os.getpid()}"
    dead = orphan(docker_client, sandbox_image, run_id, gone_owner())
    alive = orphan(docker_client, sandbox_image, run_id, cleanup.owner_labels())
    elsewhere = orphan(docker_client, sandbox_image, run_id, cleanup.owner_labels() | {"moe-agent.host": "other"})
    try:
        owners = {item.id: item.owner for item in cleanup.leftovers(docker_client, run_id)}
        assert owners == {dead.id: "gone", alive.id: "alive", elsewhere.id: "unknown"}
        check = leftover_check(docker_client)
        assert check.warning and dead.id[:12] in check.what and alive.id[:12] not in check.what
        script = textwrap.dedent(f"""
            from sandbox.docker import SandboxSpec, start_sandbox
            start_sandbox(SandboxSpec(image={sandbox_image!r}, run_id="pytest-reaper-{os.getpid()}")).close()
        """)
        subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=120)
        assert {item.id for item in cleanup.leftovers(docker_client, run_id)} == {alive.id, elsewhere.id}
    finally:
        for container in (dead, alive, elsewhere):
            subprocess.run(["docker", "rm", "-f", container.id], capture_output=True)


def test_daemon_not_running_is_one_line_exit_3(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    result = subprocess.run([sys.executable, "-m", "agent", "sandbox", "ls"], capture_output=True, text=True,
                            env=env, cwd=ROOT)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "not running" in result.stderr


def test_connect_raises_sandbox_error(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(SandboxError, match="not running"):
        connect(timeout=5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("('Connection aborted.', PermissionError(13, 'Permission denied'))", "permission denied"),
        ("Error: write /var/lib/docker/tmp: no space left on device", "out of disk space"),
        ("('Connection aborted.', ConnectionRefusedError(111, 'Connection refused'))", "not answering"),
    ],
)
def test_docker_errors_are_explained(text: str, expected: str) -> None:
    assert expected in explain_docker_error(Exception(text))


def test_docker_not_installed_is_explained(monkeypatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    message = explain_docker_error(Exception("FileNotFoundError(2, 'No such file or directory')"))
    assert "not installed" in message


# -- hardening ----------------------------------------------------------------------------------
NET_ADMIN_BIT = 1 << 12  # linux/capability.h: CAP_NET_ADMIN is 12


def _status(box: DockerSandbox) -> dict[str, str]:
    lines = box.run("cat /proc/self/status").output.splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


@pytest.mark.parametrize("user", [None, "root"])
def test_a_sandbox_has_no_capabilities_and_cannot_gain_privileges(make_sandbox, docker_client, user) -> None:
    box = make_sandbox(user=user)
    host = docker_client.api.inspect_container(box.id)["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    status = _status(box)
    assert (int(status["CapEff"], 16), int(status["CapBnd"], 16), status["NoNewPrivs"]) == (0, 0, "1")
    # Root without CHOWN/DAC_OVERRIDE/MKNOD: what Docker's default set would have allowed fails.
    assert box.run("touch /tmp/f && chown 1234 /tmp/f").exit_code != 0
    assert box.run("mknod /tmp/dev c 1 3").exit_code != 0
    # Ports below 1024 still bind (the requests recipe's httpbin on :80 and :443): Docker sets
    # net.ipv4.ip_unprivileged_port_start=0 in a container's own network namespace.
    assert box.run("python3 -c \"import socket; socket.socket().bind(('127.0.0.1', 80))\"").ok


@pytest.mark.parametrize("user", [None, "root"])
def test_a_spec_adds_back_only_the_capabilities_it_names(make_sandbox, docker_client, user) -> None:
    # Root's: Docker gives a user other than root no ambient capabilities, only the bounding set. So a
    # spec that leaves the user to the image (the default image's is `agent`, uid 1000) runs as root.
    box = make_sandbox(extra_capabilities=["NET_ADMIN"], user=user)
    assert box.run("id -u").output.split() == ["0"]
    assert int(_status(box)["CapEff"], 16) == NET_ADMIN_BIT
    assert docker_client.api.inspect_container(box.id)["HostConfig"]["CapAdd"] == ["NET_ADMIN"]


def test_capabilities_leave_a_named_user_alone() -> None:
    assert SandboxSpec(image="i", extra_capabilities=["NET_ADMIN"]).user == "root"
    assert SandboxSpec(image="i", extra_capabilities=["NET_ADMIN"], user="1000").user == "1000"
    assert SandboxSpec(image="i").user is None


def test_a_sandbox_runs_as_the_user_it_is_given(make_sandbox, tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    for path in [repo, *repo.rglob("*")]:
        os.chown(path, 4321, 4321)
    box = make_sandbox(mount=repo, user="4321:4321")
    assert box.run("id -u; id -g").output.split() == ["4321", "4321"]
    box.run("echo mine > created.txt")
    assert (repo / "created.txt").stat().st_uid == 4321


def test_the_default_sandbox_runs_as_an_unprivileged_user_who_owns_its_files(make_sandbox, tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    box = make_sandbox(copy_from=repo)
    assert box.run("id -un; id -u; id -g").output.split() == ["agent", "1000", "1000"]
    assert box.owner == (1000, 1000)
    box.write_file("pkg/small.py", b"y = 2\n")  # through the shell
    box.write_file("pkg/big.bin", b"z" * (SHELL_WRITE_BYTES + 1))  # through Docker's archive API
    owners = box.run("stat -c '%U %n' /testbed /testbed/README /testbed/pkg /testbed/pkg/mod.py pkg/small.py "
                     "pkg/big.bin").output.split("\n")
    assert [line.split()[0] for line in owners if line] == ["agent"] * 6, owners
    assert box.run("echo more >> README && echo more >> pkg/big.bin && mkdir -p pkg/new && rm pkg/mod.py").ok
    # What the image's root owns stays out of reach; localhost has a name without root's help.
    assert box.run("touch /etc/planted").exit_code != 0
    assert box.run("getent hosts localhost").ok


def test_an_unprivileged_sandbox_names_localhost_without_a_root_exec(make_sandbox, docker_client) -> None:
    """Docker leaves /etc/hosts empty and root's; a bind-mounted copy spares an `exec` (about 75 ms of CPU)."""
    box = make_sandbox()
    assert box.run("id -un").output.strip() == "agent" and box.run("getent hosts localhost").ok
    assert "127.0.0.1\tlocalhost" in box.run("cat /etc/hosts").output
    assert not docker_client.api.inspect_container(box.id)["ExecIDs"]
    assert box.run("echo 10.0.0.1 planted >> /etc/hosts").exit_code != 0
    assert docker_client.images.get(box.spec.image).attrs["Config"]["User"] == "agent"


def test_a_fork_bomb_is_stopped_and_the_shell_restarts(make_sandbox, docker_client) -> None:
    box = make_sandbox(pids_limit=96)
    assert box.run("echo exported=1; export MARK=set").ok
    assert box.run(":(){ :|:& };:").exit_code == 0  # the bomb runs on in the background
    container = docker_client.containers.get(box.id)
    deadline = time.monotonic() + 120  # a bound against waiting forever, not a speed target
    while (container.stats(stream=False).get("pids_stats") or {}).get("current", 0) < 90:
        assert time.monotonic() < deadline, "the bomb never reached the limit"
    result = box.run("echo after; echo ${MARK:-reset}")
    assert result.output == "after\nreset\n"  # no "fork: retry" before it: the bomb was gone first
    assert result.notes[0].startswith("the sandbox had reached its limit of 96 processes (a fork bomb")
    box.write_file("after.txt", b"edits work again\n")
    assert box.read_file("after.txt") == b"edits work again\n"
    assert int(box.run("ls /proc | grep -c '^[0-9]'").output) < 20
    assert box.run("echo quiet").notes == ()  # told once


def test_scratch_space_is_a_sized_tmpfs_and_full_says_so(make_sandbox) -> None:
    box = make_sandbox(tmp_size="16m", disk_size="1g")
    assert box.run("df -k --output=fstype,size /tmp /var/tmp | tail -2").output.split() == ["tmpfs", "16384"] * 2
    result = box.run("dd if=/dev/zero of=/tmp/fill bs=1M count=64")
    assert "No space left on device" in result.output
    assert result.notes == ("no space left on device: the sandbox's writable space is limited (/tmp holds at most "
                            "16m, the rest of the sandbox at most 1.0 GB); delete files you no longer need (e.g. in "
                            "/tmp) before writing more",)
    assert box.run("rm /tmp/fill").ok
    big = os.urandom(300_000)  # past what the shell carries: the archive path, staged beside the workdir
    box.write_file("/tmp/big.bin", big)
    assert box.read_file("/tmp/big.bin") == big
    assert box.run("ls -a /testbed | grep -c moe").output == "0\n"  # no staged copy left behind


def test_mounts_from_host_paths_with_colons_and_commas(make_sandbox, tmp_path: Path) -> None:
    """A repository under `we:ird, dir/` is mounted like any other (no "host:target:mode" strings)."""
    odd = tmp_path / "we:ird, dir"
    odd.mkdir()
    (odd / "f.txt").write_text("seen\n")
    box = make_sandbox(readonly_mounts={odd: "/run/odd"})
    assert box.run("cat /run/odd/f.txt").output.strip() == "seen"
    assert not box.run("touch /run/odd/g.txt").ok


def test_a_big_file_in_the_tmpfs_scratch_space_is_read_in_pieces(box: DockerSandbox, monkeypatch) -> None:
    """Docker's archive API cannot see a tmpfs: a big file in /tmp (a large patch) is read through the shell."""
    monkeypatch.setattr("sandbox.docker.SHELL_READ_BYTES", 1000)
    data = bytes(range(256)) * 20 + b"tail"
    box.run("mkdir -p /tmp/big")
    box.write_file("/tmp/big/patch", data)
    assert box.run("grep -c ' /tmp ' /proc/mounts").output.strip() == "1"  # /tmp is a tmpfs here
    assert box.read_file("/tmp/big/patch") == data


def _tar(entries: list[tuple[str, bytes, int, int]]) -> bytes:
    """A tar of (name, data, mode, mtime) regular files."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data, mode, mtime in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid, info.gid = len(data), mode, mtime, 4242, 4242
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_unpack_streams_through_the_shell_which_reads_on_after_it(make_sandbox, docker_client) -> None:
    box = make_sandbox(user="root")  # the shell path is root's (the default image's `agent` takes the archive API)
    big = os.urandom(3 * 2**20 + 17)  # several frames, and a last one that is not full
    data = _tar([("testbed/pkg/big.bin", big, 0o644, 1_000_000_000),
                 ("testbed/run.sh", b"#!/bin/sh\necho ran\n", 0o755, 1_100_000_000)])
    box.unpack((data[n:n + 100_000] for n in range(0, len(data), 100_000)), dest="/")
    out = box.run("stat -c '%a %Y %s %u' run.sh pkg/big.bin; ./run.sh; sha256sum pkg/big.bin").output.split("\n")
    import hashlib

    assert out[:3] == ["755 1100000000 19 0", f"644 1000000000 {len(big)} 0", "ran"]  # the sandbox's user owns them
    assert out[3].split()[0] == hashlib.sha256(big).hexdigest()
    assert box.run("echo next").output == "next\n"  # nothing of the stream was left for the shell to run
    assert (docker_client.api.inspect_container(box.id)["ExecIDs"] or []) == []


def test_unpack_failure_is_one_line_and_the_shell_lives_on(make_sandbox) -> None:
    box = make_sandbox(user="root")
    with pytest.raises(SandboxError, match="could not copy the repository into the sandbox: .*No such file"):
        box.unpack(iter([_tar([("a.txt", b"x", 0o644, 0)])]), dest="/nowhere")
    assert box.run("echo alive").output == "alive\n" and box._service is not None and box._service.restarts == 0


def test_unpack_as_another_user_goes_through_the_archive_api(make_sandbox) -> None:
    box = make_sandbox(user="1000:1000")
    box.unpack(iter([_tar([("testbed/a.txt", b"kept owner\n", 0o644, 0)])]), dest="/")
    assert box.run("cat a.txt; stat -c %u a.txt").output == "kept owner\n4242\n"


def test_close_without_waiting_leaves_the_container_to_remove_itself(docker_client, sandbox_image) -> None:
    box = start_sandbox(SandboxSpec(image=sandbox_image, run_id="pytest-close-nowait"), docker_client)
    cid = box.id
    box.close(wait=False)
    assert cid not in cleanup.live()
    deadline = time.monotonic() + 60  # Docker removes it on its own; how soon is not what is tested
    while docker_client.containers.list(all=True, filters={"id": cid}, ignore_removed=True) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not docker_client.containers.list(all=True, filters={"id": cid}, ignore_removed=True)


def test_doctor_lists_and_prune_removes_a_killed_run_s_temporary_copy(tmp_path) -> None:
    from tests.sandbox.test_cleanup import killed_run_scratch

    dead = killed_run_scratch(tmp_path)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    checked = subprocess.run([sys.executable, "-m", "agent", "doctor", "--no-model", "-C", str(tmp_path)],
                             capture_output=True, text=True, cwd=ROOT, env=env)
    assert f"1 leftover temporary copy of runs that are gone: {dead}" in checked.stdout, checked.stdout
    pruned = subprocess.run([sys.executable, "-m", "agent", "sandbox", "prune", "--run", f"pytest-none-{os.getpid()}"],
                            capture_output=True, text=True, cwd=ROOT, env=env)
    assert pruned.returncode == 0 and "removed 1 temporary copy of runs that are gone" in pruned.stdout, pruned.stderr
    assert list(tmp_path.iterdir()) == []


def test_writes_past_the_disk_limit_are_told_stopped_and_bounded(docker_client, sandbox_image, monkeypatch) -> None:
    """overlay2 on ext4 (here, and CI) cannot limit a container's layer: the sandbox measures and enforces it."""
    import sandbox.disk

    spec = SandboxSpec(image=sandbox_image, disk_size="64m", run_id=f"pytest-disk-{os.getpid()}")
    monkeypatch.setattr(sandbox.disk, "POLL_SECONDS", (60.0, 60.0))  # the watcher keeps out of this part
    with start_sandbox(spec, docker_client) as box:
        filled = box.run("for i in 1 2 3; do dd if=/dev/zero of=/testbed/f$i bs=1M count=30 2>/dev/null; done")
        assert any(n.startswith("no space left: this sandbox may write at most 64 MB to its disk ([sandbox] "
                                "disk_size) and 90 MB is written") for n in filled.notes), filled.notes
        refused = box.run("echo more > /testbed/more; echo rc=$?")
        assert "File too large" in refused.output and "rc=1" in refused.output  # the shell itself survives
        with pytest.raises(OSError, match="no space left: this sandbox may write at most 64 MB"):
            box.write_file("notes.txt", b"x")
        freed = box.run("rm /testbed/f1 /testbed/f2")
        assert any(n.startswith("disk space is available again") for n in freed.notes), freed.notes
        one = box.run("dd if=/dev/zero of=/testbed/huge bs=1M count=100 2>&1 | head -1; rm /testbed/huge")
        assert "File too large" in one.output  # no single file past the limit, and the writer lives
        assert box.run("echo fine > /testbed/ok && cat /testbed/ok").output == "fine\n"
        box.write_file("notes.txt", b"x")
        asked = box.run("df -h /")
        assert any("`df` shows the host's disk; this sandbox may write at most 64 MB" in n for n in asked.notes)
        # Raising its own soft limit back does not let it grow on: the run ends.
        box.run("for i in 4 5 6; do dd if=/dev/zero of=/testbed/g$i bs=1M count=30 2>/dev/null; done")
        with pytest.raises(SandboxError, match=r"past its limit of 64 MB \(\[sandbox\] disk_size\), after its writes"):
            box.run('ulimit -S -f "$(ulimit -H -f)"; for i in 7 8 9 10 11; do dd if=/dev/zero of=/testbed/g$i bs=1M '
                    'count=30 2>/dev/null; done')
    monkeypatch.setattr(sandbox.disk, "POLL_SECONDS", (0.3, 0.5))
    with start_sandbox(spec, docker_client) as box:
        # One command writing on and on (a loop of the shell itself) is stopped while it runs...
        looping = box.run("for i in $(seq 200); do dd if=/dev/zero of=/testbed/w$i bs=1M count=5 2>/dev/null; "
                          "sleep 0.05; done")
        stopped = ("processes were stopped (and the shell restarted): they kept writing past the sandbox's disk "
                   "limit of 64 MB")
        assert stopped in looping.notes, looping.notes
        written = int(box.run("du -sm /testbed | cut -f1").output)
        assert written < 400, written  # not the 1000 MB it meant to write
        box.run("rm -f /testbed/w*")
        # ...and so is one writing in the background while the model thinks.
        box.run("( for i in $(seq 200); do dd if=/dev/zero of=/testbed/b$i bs=1M count=5 2>/dev/null; "
                "sleep 0.05; done ) >/dev/null 2>&1 &")
        for _ in range(300):
            if box._disk_stopped:
                break
            time.sleep(0.1)
        assert stopped in box.run("true").notes
        written = int(box.run("du -sm /testbed | cut -f1").output)
        time.sleep(1)
        assert int(box.run("du -sm /testbed | cut -f1").output) == written < 400  # and it writes no more


def test_a_background_writer_started_at_the_disk_limit_writes_nothing(docker_client, sandbox_image) -> None:
    """Filled exactly to its limit by one capped file, the sandbox is full; its shell, restarted, stays so."""
    spec = SandboxSpec(image=sandbox_image, disk_size="64m", run_id=f"pytest-disk-bg-{os.getpid()}")
    with start_sandbox(spec, docker_client) as box:
        filled = box.run("dd if=/dev/zero of=/testbed/a bs=1M count=100 2>/dev/null; ls -s --block-size=M a")
        assert filled.output == "64M a\n" and any(n.startswith("no space left") for n in filled.notes), filled
        box.shell.stop_command()  # as the watcher or a runaway-process stop does: a new shell
        box.run(":")  # collects the killed shell's last words
        assert box.run("ulimit -S -f").output == "0\n"
        box.run("nohup sh -c 'sleep 1; dd if=/dev/zero of=/testbed/b bs=1M count=60; "
                "dd if=/dev/zero of=/testbed/c bs=1M count=60' >/dev/null 2>&1 &")
        time.sleep(4)
        assert box.run("cat /testbed/b /testbed/c 2>/dev/null | wc -c").output == "0\n"


def test_the_repository_copied_in_does_not_count_against_the_disk_limit(make_sandbox) -> None:
    import io
    import tarfile

    box = make_sandbox(disk_size="64m")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("data.bin")
        info.size = 50 * 2**20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    box.unpack(iter([archive.getvalue()]))
    wrote = box.run("dd if=/dev/zero of=/testbed/out bs=1M count=30 2>/dev/null; ls -s --block-size=M data.bin")
    assert wrote.output == "50M data.bin\n" and wrote.notes == ()  # 30 MB of the model's own: under 64 MB
    more = box.run("dd if=/dev/zero of=/testbed/more bs=1M count=40 2>/dev/null")
    assert any("and 70 MB is written" in note for note in more.notes), more.notes


def test_cpu_limit_is_capped_at_the_cpus_this_process_may_use(monkeypatch) -> None:
    """Docker refuses nano_cpus above the machine's CPUs: the default 2.0 must still start on one CPU."""
    from sandbox.docker import cpu_quota

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    assert cpu_quota(2.0) == 1_000_000_000 and cpu_quota(0.5) == 500_000_000 and cpu_quota(None) is None
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert cpu_quota(2.0) == 2_000_000_000
