"""The bash tool against a real container: output, exit codes, persistence, timeouts, restarts."""

from __future__ import annotations

import pytest

from tools.base import call_tool
from tools.encoding import OUTPUT_NOTE
from tools.shell import bash

pytestmark = pytest.mark.docker


def test_output_and_exit_code(call) -> None:
    obs = call("bash", command="echo hi; echo oops >&2; exit_code_test() { return 3; }; exit_code_test")
    assert not obs.is_error
    assert obs.text.startswith("hi\noops\n") and obs.text.endswith("[exit code: 3]")
    assert obs.data["exit_code"] == 3 and obs.data["timed_out"] is False


def test_state_persists_between_calls(call) -> None:
    call("bash", command="cd src && export GREETING=salut")
    obs = call("bash", command='pwd; echo "$GREETING"')
    assert obs.text.startswith("/testbed/src\nsalut\n")


def test_no_output_is_said_explicitly(call) -> None:
    assert call("bash", command="true").text == "(no output)\n[exit code: 0]"


def test_timeout_interrupts_and_the_shell_keeps_working(call) -> None:
    obs = call("bash", command="echo started; sleep 30", timeout=1)
    assert "started" in obs.text and "timed out after 1 s" in obs.text and obs.data["timed_out"] is True
    assert call("bash", command="echo alive").text.startswith("alive\n")


def test_timeout_is_capped_at_the_maximum(call, ctx) -> None:
    ctx.max_command_timeout = 5
    obs = call("bash", command="echo quick", timeout=10_000)
    assert "capped at the maximum of 5 s" in obs.text and obs.text.startswith("quick\n")


def test_exiting_the_shell_restarts_it(call) -> None:
    call("bash", command="export KEEP=1")
    obs = call("bash", command="exit 4")
    assert "restarted" in obs.text
    after = call("bash", command='echo "keep=${KEEP:-gone}"')
    assert after.text.startswith("keep=gone\n")


def test_long_output_is_capped_head_and_tail(call, ctx) -> None:
    ctx.observation_max_chars = 2_000
    obs = call("bash", command="seq 1 100000")
    assert obs.text.startswith("1\n2\n3\n") and "100000\n[exit code: 0]" in obs.text
    assert "cut from the middle" in obs.text and len(obs.text) < 2_500


def test_binary_output_does_not_break_the_observation(call) -> None:
    obs = call("bash", command="printf 'caf\\xe9 \\x00\\xff\\n'")
    assert not obs.is_error and obs.text.startswith("caf\\xe9 \x00\\xff\n[exit code: 0]\n")
    assert obs.text.endswith(f"[Note: {OUTPUT_NOTE}.]") and "bytes that are not UTF-8, so in it they are shown" in OUTPUT_NOTE


@pytest.mark.parametrize("args", [{}, {"command": 5}, {"command": "ls", "timeout": "ten"},
                                  {"command": "ls", "timeout": 0}, {"cmd": "ls"}])
def test_missing_or_wrongly_typed_arguments(ctx, args) -> None:
    obs = call_tool(bash, args, ctx)
    assert obs.is_error and obs.text.startswith("Invalid arguments") and "command" in obs.text


@pytest.mark.parametrize("command", ["", "   \n"])
def test_empty_command_is_refused(call, command) -> None:
    obs = call("bash", command=command)
    assert obs.is_error and "empty" in obs.text
