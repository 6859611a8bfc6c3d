"""`agent model`: look at model replies offline, the way the agent loop reads them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from agent.errors import UsageError

if TYPE_CHECKING:
    from agent.toolcalls import Format

app = typer.Typer(help="Inspect model replies the way the agent loop reads them.", no_args_is_help=True)

_MESSAGE_KEYS = ("content", "tool_calls", "reasoning_content", "reasoning", "role")


@app.command("parse")
def parse(
    file: str = typer.Argument("-", metavar="[FILE|-]",
                               help="A raw reply, or a chat-completion message/response as JSON; '-' reads stdin."),
    fmt: str = typer.Option("auto", "--format", help="How tool calls are written: auto, native, hermes or xml."),
    tools_file: Path | None = typer.Option(None, "--tools", metavar="TOOLS.json",
                                           help="An OpenAI tools list: checks tool names and converts argument types."),
) -> None:
    """Parse one model reply and print its calls, content, reasoning and errors as JSON."""
    from agent.toolcalls import FORMATS, parse_reply  # not at import: `agent --help` stays fast

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    tools = load_tools(tools_file) if tools_file else []
    message = reply_message(_read_input(file))
    parsed = parse_reply(message.get("content"), tools, cast("Format", fmt),
                         native_calls=message.get("tool_calls") or None,
                         reasoning=message.get("reasoning_content") or message.get("reasoning"))
    typer.echo(json.dumps({
        "calls": [{"name": call.name, "arguments": call.arguments} for call in parsed.calls],
        "content": parsed.content,
        "reasoning": parsed.reasoning,
        "errors": parsed.errors,
    }, ensure_ascii=False, indent=2))


def reply_message(text: str) -> dict[str, Any]:
    """The assistant message in `text`: a chat-completion response or message as JSON, else the raw content."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("choices"), list) and data["choices"]:
            data = data["choices"][0].get("message") or data["choices"][0].get("delta") or {}
        if isinstance(data, dict) and any(key in data for key in _MESSAGE_KEYS):
            return {**data, "content": _text_of(data.get("content"))}
    return {"content": text}


def load_tools(path: Path) -> list[dict[str, Any]]:
    """An OpenAI `tools` list from a JSON file (a request body with a `tools` key also works)."""
    try:
        data = json.loads(_read_file(path))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if isinstance(data, dict) and "tools" in data:
        data = data["tools"]
    if not isinstance(data, list) or not all(_is_tool(tool) for tool in data):
        raise UsageError(f'{path} must hold an OpenAI tools list: [{{"type": "function", "function": '
                         f'{{"name": ..., "parameters": {{...}}}}}}, ...]')
    return data


def _is_tool(tool: Any) -> bool:
    function = tool.get("function") if isinstance(tool, dict) else None
    return isinstance(function, dict) and isinstance(function.get("name"), str)


def _text_of(content: Any) -> str | None:
    """Message content as text; OpenAI also allows a list of `{"type": "text", "text": ...}` parts."""
    if isinstance(content, list):
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return content if content is None else str(content)


def _read_input(file: str) -> str:
    return sys.stdin.read() if file == "-" else _read_file(Path(file))


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {path}: it is not UTF-8 text") from None

