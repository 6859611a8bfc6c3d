"""`agent model parse`: one raw reply in, the loop's reading of it out as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import UsageError

EDITOR_PARAMETERS = {
    "type": "object",
    "properties": {"command": {"type": "string"}, "path": {"type": "string"},
                   "view_range": {"type": "array", "items": {"type": "integer"}}},
    "required": ["command", "path"],
}
BASH_PARAMETERS = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}
TOOLS = [
    {"type": "function", "function": {"name": "str_replace_editor", "description": "View or edit files.",
                                      "parameters": EDITOR_PARAMETERS}},
    {"type": "function", "function": {"name": "bash", "description": "Run a command.", "parameters": BASH_PARAMETERS}},
]
XML_REPLY = ("<think>Look at the top of the file.</think>\nLet me view it.\n"
             "<tool_call>\n<function=str_replace_editor>\n<parameter=command>\nview\n</parameter>\n<parameter=path>\n/repo/app.py\n</parameter>\n"
             "<parameter=view_range>\n[1, 40]\n</parameter>\n</function>\n</tool_call>")
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(TOOLS))
    return path


def run(args: list[str], stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, ["model", "parse", *args], input=stdin)


def parsed_output(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_raw_text_file_with_tools_converts_types(tmp_path: Path, tools_file: Path) -> None:
    reply = tmp_path / "reply.txt"
    reply.write_text(XML_REPLY)

    out = parsed_output(run([str(reply), "--tools", str(tools_file)]))

    assert out == {
        "calls": [{"name": "str_replace_editor",
                   "arguments": {"command": "view", "path": "/repo/app.py", "view_range": [1, 40]}}],
        "content": "Let me view it.",
        "reasoning": "Look at the top of the file.",
        "errors": [],
    }


def test_without_tools_values_stay_text() -> None:
    out = parsed_output(run([], stdin=XML_REPLY))

    assert out["calls"][0]["arguments"]["view_range"] == "[1, 40]"


def test_dash_reads_stdin_and_reports_errors_in_the_json(tools_file: Path) -> None:
    reply = '<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>'

    out = parsed_output(run(["-", "--tools", str(tools_file)], stdin=reply))

    assert out["calls"] == []
    assert out["errors"] == ["Tool call 1: there is no tool named 'rm_rf'. Available tools: str_replace_editor, bash."]


def test_full_chat_completion_response_uses_native_calls_and_reasoning(tmp_path: Path, tools_file: Path) -> None:
    message = {
        "role": "assistant", "content": "Listing.", "reasoning_content": "Start with ls.",
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "bash", "arguments": '{"command": "ls"}'}}],
    }
    response = {"id": "x", "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": message}]}
    path = tmp_path / "response.json"
    path.write_text(json.dumps(response))

    out = parsed_output(run([str(path), "--tools", str(tools_file)]))

    assert out == {"calls": [{"name": "bash", "arguments": {"command": "ls"}}], "content": "Listing.",
                   "reasoning": "Start with ls.", "errors": []}


def test_message_json_without_native_calls_parses_its_text(tools_file: Path) -> None:
    message = {"role": "assistant", "content": [{"type": "text", "text": XML_REPLY}], "tool_calls": []}

    out = parsed_output(run(["--tools", str(tools_file)], stdin=json.dumps(message)))

    assert out["calls"][0]["arguments"]["view_range"] == [1, 40]


def test_a_json_looking_reply_that_is_not_a_message_is_raw_text() -> None:
    # Read as the reply's text, not as a message; that text is a bare JSON call, as Qwen2.5-Coder writes one.
    out = parsed_output(run([], stdin='{"name": "bash", "arguments": {"command": "ls"}}'))

    assert out["calls"] == [{"name": "bash", "arguments": {"command": "ls"}}]
    assert out["content"] == ""
    out = parsed_output(run([], stdin='{"name": "moe-agent", "version": "1.0"}'))
    assert (out["calls"], out["content"]) == ([], '{"name": "moe-agent", "version": "1.0"}')


def test_format_is_honoured(tools_file: Path) -> None:
    out = parsed_output(run(["--format", "hermes", "--tools", str(tools_file)], stdin=XML_REPLY))

    assert out["calls"] == []
    assert "this session uses hermes syntax" in out["errors"][0]


@pytest.mark.parametrize("args, message", [
    (["missing.txt"], "cannot read missing.txt: No such file or directory"),
    (["--format", "json"], "--format must be one of auto, native, hermes, xml, not 'json'"),
])
def test_bad_arguments_are_usage_errors(args: list[str], message: str) -> None:
    result = run(args, stdin="hello")

    assert isinstance(result.exception, UsageError)
    assert str(result.exception) == message


@pytest.mark.parametrize("content, message", [
    ("[{\"type\": ", "is not valid JSON: Expecting value at line 1 column 11"),
    ('{"name": "bash"}', "must hold an OpenAI tools list"),
    ('[{"type": "function", "function": {"description": "no name"}}]', "must hold an OpenAI tools list"),
])
def test_bad_tools_file_is_a_usage_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tools.json"
    path.write_text(content)

    result = run(["--tools", str(path)], stdin="hello")

    assert isinstance(result.exception, UsageError)
    assert message in str(result.exception)


def test_tools_inside_a_request_body_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "request.json"
    path.write_text(json.dumps({"model": "qwen", "messages": [], "tools": TOOLS}))

    out = parsed_output(run(["--tools", str(path)], stdin=XML_REPLY))

    assert out["calls"][0]["arguments"]["view_range"] == [1, 40]


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from agent.cli import main; main()", "model", "parse", *args],
                          input=stdin, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)


def test_entry_point_exit_codes_and_no_traceback(tmp_path: Path, tools_file: Path) -> None:
    ok = cli("--tools", str(tools_file), stdin=XML_REPLY)
    bad_tools = tmp_path / "bad.json"
    bad_tools.write_text("not json")
    bad = cli("--tools", str(bad_tools), stdin=XML_REPLY)

    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["calls"][0]["name"] == "str_replace_editor"
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert "Traceback" not in bad.stderr
    expected = f"error: {bad_tools} is not valid JSON: Expecting value at line 1 column 1"
    assert bad.stderr.strip().splitlines() == [expected]
