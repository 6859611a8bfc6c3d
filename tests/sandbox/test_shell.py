"""The persistent shell against a real container: every robustness case of the protocol."""

from __future__ import annotations

import pytest

from sandbox.docker import DockerSandbox

pytestmark = pytest.mark.docker


def test_state_persists_between_commands(box: DockerSandbox) -> None:
    assert box.run("cd /tmp && export GREETING=hello").ok
    result = box.run("pwd; echo $GREETING")
    assert result.output == "/tmp\nhello\n"
    assert result.exit_code == 0 and result.duration >= 0


def test_virtualenv_activation_persists(box: DockerSandbox) -> None:
    created = box.run("python3 -m venv /tmp/venv && . /tmp/venv/bin/activate", timeout=120)
    assert created.ok, created.output
    assert box.run("command -v python").output.strip() == "/tmp/venv/bin/python"


def test_exit_codes_and_stderr_are_reported(box: DockerSandbox) -> None:
    result = box.run("echo out; echo err >&2; false")
    assert result.exit_code == 1
    assert "out\n" in result.output and "err\n" in result.output


def test_output_without_trailing_newline_is_exact(box: DockerSandbox) -> None:
    assert box.run("printf 'no newline'").output == "no newline"
    assert box.run("printf 'one\\n\\n'").output == "one\n\n"
    assert box.run("true").output == ""


def test_output_containing_sentinel_like_text(box: DockerSandbox) -> None:
    marker = box.shell._marker.decode()
    result = box.run(f"echo '{marker.strip()} 0 /fake'; printf '__MOE_x_1__ 5 /tmp\\n'; echo after")
    assert result.exit_code == 0
    assert "after\n" in result.output and "__MOE_x_1__ 5 /tmp" in result.output
    assert box.run("pwd").output == "/testbed\n"


def test_quotes_and_special_characters_survive(box: DockerSandbox) -> None:
    text = "it's \"quoted\" $HOME `cmd` \\ back \t tab ünïcode"
    result = box.run(f"cat <<'EOF'\n{text}\nEOF")
    assert result.output == text + "\n"


def test_non_utf8_output_is_kept_byte_for_byte_not_fatal(box: DockerSandbox) -> None:
    result = box.run("printf 'ok \\xff\\xfe end'")
    assert result.exit_code == 0
    assert result.output == "ok \udcff\udcfe end"  # surrogateescape: the bytes can be had back
    assert result.output.encode("utf-8", "surrogateescape") == b"ok \xff\xfe end"


def test_huge_output_keeps_head_and_tail(make_sandbox) -> None:
    box = make_sandbox(output_limit=10_000)
    result = box.run("seq 1 200000")
    assert result.exit_code == 0
    assert result.output.startswith("1\n2\n3\n")
    assert result.output.rstrip().endswith("199999\n200000")
    assert "cut from the middle" in result.output
    assert result.truncated_bytes > 1_000_000
    assert len(result.output) < 11_000
    assert box.run("echo still-alive").output == "still-alive\n"


def test_command_reading_stdin_gets_eof(box: DockerSandbox) -> None:
    result = box.run("cat; read -r line; echo read=$?", timeout=10)
    assert not result.timed_out
    assert result.output.strip() == "read=1"
    assert box.run("echo next").output == "next\n"


def test_background_job_does_not_block(box: DockerSandbox) -> None:
    result = box.run("sleep 30 & echo started", timeout=10)
    assert result.output == "started\n" and not result.timed_out
    assert box.run("echo next").output == "next\n"


def test_exit_restarts_the_shell_and_says_so(box: DockerSandbox) -> None:
    box.run("cd /tmp && export LOST=1")
    result = box.run("echo bye; exit 3")
    assert result.restarted and result.exit_code == 3
    assert "bye" in result.output
    assert any("restarted" in note for note in result.notes)
    after = box.run("pwd; echo ${LOST:-unset}")
    assert after.output == "/tmp\nunset\n"


def test_killed_shell_is_restarted(box: DockerSandbox) -> None:
    result = box.run("kill -9 $$")
    assert result.restarted
    assert box.run("echo alive").output == "alive\n"


def test_shell_killed_between_commands_is_restarted_and_says_so(box: DockerSandbox) -> None:
    box.run("cd /tmp")
    pid = box.run("echo $$").output.strip()
    assert box.container.exec_run(["bash", "-c", f"kill -9 {pid}"]).exit_code == 0  # from outside, like the OOM killer
    result = box.run("echo alive")  # whether the death shows before or after sending, it is said
    assert result.restarted and any("restarted in /tmp" in note for note in result.notes)
    assert box.run("echo alive; pwd").output == "alive\n/tmp\n"


def test_timeout_interrupts_and_session_survives(box: DockerSandbox) -> None:
    box.run("export KEPT=yes")
    result = box.run("echo begin; sleep 60", timeout=1)
    assert result.timed_out and not result.restarted
    assert result.output.startswith("begin")
    assert any("timed out" in note for note in result.notes)
    assert box.run("echo $KEPT").output == "yes\n"


def test_shell_stuck_in_a_builtin_loop_is_killed_not_left_spinning(box: DockerSandbox) -> None:
    old = box.run("echo $$").output.strip()
    result = box.run("while :; do :; done", timeout=1)  # no child to signal: the shell itself spins
    assert result.timed_out and result.restarted
    assert box.run(f"test -d /proc/{old} && echo running || echo gone").output == "gone\n"


def test_timeout_of_command_ignoring_sigint_is_killed(box: DockerSandbox) -> None:
    result = box.run("bash -c \"trap '' INT; sleep 60\"", timeout=1)
    assert result.timed_out
    assert any("SIGKILL" in note for note in result.notes)
    assert box.run("echo ok").output == "ok\n"


def test_busy_loop_in_the_shell_itself_restarts_it(box: DockerSandbox) -> None:
    result = box.run("trap '' INT; while :; do :; done", timeout=1)
    assert result.timed_out and result.restarted
    assert box.run("echo recovered").output == "recovered\n"


def test_syntax_error_is_an_ordinary_failure(box: DockerSandbox) -> None:
    result = box.run("if then fi")
    assert result.exit_code != 0 and not result.restarted
    assert "syntax error" in result.output
    assert box.run("echo fine").output == "fine\n"
