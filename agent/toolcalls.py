"""Tool calls out of one model reply, in whatever form the server handed them back.

A vLLM/SGLang server started without a tool parser returns calls as plain text, and one
with a parser leaves malformed calls in the text. So besides the native `tool_calls` list
we read the two text formats Qwen models are trained on: Hermes
(`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`) and Qwen3-Coder XML
(`<tool_call><function=NAME><parameter=P>value</parameter></function></tool_call>`).
XML values are raw text, converted by the tool's JSON-schema types as vLLM's Qwen3-Coder
parser does.

Anything that looks like an attempted call but cannot be run becomes an error written for
the model: what was wrong and what is expected. Valid calls next to it are still returned.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Format = Literal["auto", "native", "hermes", "xml"]
TextFormat = Literal["hermes", "xml"]
FORMATS: tuple[str, ...] = ("auto", "native", "hermes", "xml")


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = ""  # set for native calls only; text calls carry no id


@dataclass
class ParsedReply:
    calls: list[ToolCall] = field(default_factory=list)
    content: str = ""  # the reply without thinking and without the calls
    reasoning: str | None = None  # recorded in the trajectory, never sent back
    errors: list[str] = field(default_factory=list)  # worded for the model


@dataclass
class _Attempt:
    """One call as written, before the tools' schemas are applied."""

    name: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    raw_text: bool = False  # XML values: text still to convert by schema type
    id: str = ""
    problem: str | None = None  # the call could not even be read


_CALL_START = re.compile(r"<tool_call>|<function=")
_FUNCTION_HEADER = re.compile(r"<function=([^>\n]*)>")
# A call ends at the first `</function>` that is followed by what can follow a call; a bare
# `</function>` inside a parameter value (HTML, XML, code) is followed by more value instead.
_FUNCTION_END = re.compile(r"</function>\s*(?:</tool_call>|(?=<tool_call>|<function=)|\Z)")
_TRAILING_CALL_CLOSE = re.compile(r"\s*</tool_call>")
# Parameters do not nest, so a value runs to the next opener that starts a line or follows
# a closer; its own closer is the LAST `</parameter>` before that, so code that mentions
# `</parameter>` survives. Tolerates the `</parameter1>` / `</parameter/>` drift seen in the wild.
_PARAM_OPEN = re.compile(r"(?:\A|(?<=\n)|(?<=</parameter>))[ \t]*<parameter=([^>\n]*)>")
_PARAM_CLOSE_AT_END = re.compile(r"</parameter[^<>\n]{0,3}>?\s*\Z")
_HERMES_CLOSE = re.compile(r"[\s}\]]*</tool_call>")  # tolerates a stray closing brace
_EMPTY_FENCE = re.compile(r"```[\w+-]*\s*```")  # left behind when a call sat in a code fence

_JSON = json.JSONDecoder(strict=False)  # models put raw newlines inside JSON strings
_UNREADABLE = object()

_TYPE_ALIASES = {"int": "integer", "float": "number", "double": "number", "str": "string", "text": "string",
                 "bool": "boolean", "dict": "object", "list": "array", "arr": "array"}
_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list,
    "null": type(None),
}
_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "object": "a JSON object", "array": "a JSON array", "null": "null"}


# -- parsing ------------------------------------------------------------------------------
def parse_reply(
    content: str | None,
    tools: list[dict[str, Any]],
    fmt: Format = "auto",
    native_calls: list[dict[str, Any]] | None = None,
    reasoning: str | None = None,
) -> ParsedReply:
    """Calls, content and thinking of one assistant message; `auto` prefers native calls, else reads the text."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown tool-call format {fmt!r}; expected one of {', '.join(FORMATS)}")
    text, thought = split_thinking(content or "")
    reasoning = "\n\n".join(part.strip() for part in (reasoning, thought) if part and part.strip()) or None
    problems: list[str] = []
    if fmt == "native" or (fmt == "auto" and native_calls):
        attempts = [_native_attempt(call) for call in native_calls or []]
        text = text.strip()
        if fmt == "native" and not native_calls and _CALL_START.search(text):
            problems.append("Your reply contains a tool call written as text, which the server did not recognise as "
                            "a tool call, so nothing was run. Check the call's syntax and send it again.")
    else:
        attempts, text = _scan_text(text, fmt)
    result = ParsedReply(content=text, reasoning=reasoning, errors=problems)
    schemas = _schemas(tools)
    for number, attempt in enumerate(attempts, 1):
        checked = _check(number, attempt, schemas)
        if isinstance(checked, ToolCall):
            result.calls.append(checked)
        else:
            result.errors.append(checked)
    return result


def split_thinking(text: str) -> tuple[str, str | None]:
    """(answer, thinking). A leading `<think>` block, or all before a `</think>` whose opener was in the prompt."""
    if text.lstrip().startswith("<think>"):
        thought, closed, rest = text.lstrip()[len("<think>"):].partition("</think>")
        return (rest if closed else ""), thought.strip() or None
    close = text.find("</think>")
    first_call = _CALL_START.search(text)
    if close != -1 and (first_call is None or close < first_call.start()):
        return text[close + len("</think>"):], text[:close].strip() or None
    return text, None


def _scan_text(text: str, fmt: Format) -> tuple[list[_Attempt], str]:
    """Every call written in the text, in order, and the text around them."""
    attempts: list[_Attempt] = []
    kept: list[str] = []
    pos = 0
    while match := _CALL_START.search(text, pos):
        kept.append(text[pos:match.start()])
        found, pos = _read_call(text, match.start(), fmt)
        attempts += found
    kept.append(text[pos:])
    return attempts, _EMPTY_FENCE.sub("", "".join(kept)).strip()


def _read_call(text: str, start: int, fmt: Format) -> tuple[list[_Attempt], int]:
    """The call(s) at `start` (`<tool_call>` or a bare `<function=`) and where they end."""
    at = start
    if text.startswith("<tool_call>", start):
        at = _skip_space(text, start + len("<tool_call>"))
    if text.startswith("<function=", at):
        written, (found, end) = "xml", _read_xml(text, at)
    elif text.startswith(("{", "["), at):
        written, (found, end) = "hermes", _read_hermes(text, at)
    elif at >= len(text):
        return [_Attempt(problem=_cut_off("</tool_call>"))], len(text)
    else:
        close = text.find("</tool_call>", at)
        end = len(text) if close == -1 else close + len("</tool_call>")
        return [_Attempt(problem=f"could not read the call {_preview(text[at:end], 60)}. {_syntax_hint(fmt)}")], end
    if fmt in ("hermes", "xml") and written != fmt:
        return [_Attempt(problem=f"this call is written in {written} syntax but this session uses {fmt} syntax. "
                                 f"{_syntax_hint(fmt)}")], end
    return found, end


def _read_xml(text: str, at: int) -> tuple[list[_Attempt], int]:
    header = _FUNCTION_HEADER.match(text, at)
    if header is None:
        span = _xml_call_end(text, at)
        end = span[1] if span else len(text)
        return [_Attempt(problem=f"the function tag in {_preview(text[at:end], 60)} is malformed. "
                                 f"{_syntax_hint('xml')}")], end
    name = header.group(1).strip().strip("\"'")
    span = _xml_call_end(text, header.end())
    if span is None:
        return [_Attempt(name=name, problem=_cut_off("</function></tool_call>"))], len(text)
    body_end, end = span
    attempt = _xml_arguments(text[header.end():body_end])
    attempt.name = name
    return [attempt], end


def _xml_call_end(text: str, pos: int) -> tuple[int, int] | None:
    """(end of the function body, end of the call), or None when the reply stops inside the call."""
    if match := _FUNCTION_END.search(text, pos):
        return match.start(), match.end()
    close = text.find("</function>", pos)
    if close != -1:
        after = _TRAILING_CALL_CLOSE.match(text, close + len("</function>"))
        return close, after.end() if after else close + len("</function>")
    close = text.find("</tool_call>", pos)  # `</function>` dropped
    return (close, close + len("</tool_call>")) if close != -1 else None


def _xml_arguments(body: str) -> _Attempt:
    openers = list(_PARAM_OPEN.finditer(body))
    if not openers:
        rest = body.strip()
        if not rest:
            return _Attempt()
        as_json = _literal(rest)  # some models put a JSON object inside <function=...>
        if isinstance(as_json, dict):
            return _Attempt(arguments=as_json)
        return _Attempt(problem=f"no parameter could be read from {_preview(rest, 60)}; write each parameter as "
                                "<parameter=NAME>\nVALUE\n</parameter>.")
    arguments: dict[str, Any] = {}
    for index, opener in enumerate(openers):
        name = opener.group(1).strip().strip("\"'")
        if not name:
            return _Attempt(problem="a <parameter=> tag has no name; write each parameter as "
                                    "<parameter=NAME>\nVALUE\n</parameter>.")
        stop = openers[index + 1].start() if index + 1 < len(openers) else len(body)
        arguments[name] = _strip_one_newline(_PARAM_CLOSE_AT_END.sub("", body[opener.end():stop]))
    return _Attempt(arguments=arguments, raw_text=True)


def _strip_one_newline(value: str) -> str:
    """The template writes `<parameter=P>\\nVALUE\\n</parameter>`: exactly one newline each side is syntax."""
    value = value[1:] if value.startswith("\n") else value
    return value[:-1] if value.endswith("\n") else value


def _read_hermes(text: str, at: int) -> tuple[list[_Attempt], int]:
    objects: list[Any] = []
    pos = at
    while pos < len(text) and text[pos] in "{[":
        try:
            value, pos = _JSON.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            return _read_python_call(text, at, exc)
        objects += value if isinstance(value, list) else [value]
        pos = _skip_space(text, pos)
    close = _HERMES_CLOSE.match(text, pos)
    return [_hermes_attempt(obj) for obj in objects], close.end() if close else pos


def _read_python_call(text: str, at: int, error: json.JSONDecodeError) -> tuple[list[_Attempt], int]:
    """Not JSON: maybe a Python literal (`{'name': 'x', 'arguments': {'a': True}}`), else an error."""
    close = text.find("</tool_call>", at)
    body, end = (text[at:], len(text)) if close == -1 else (text[at:close], close + len("</tool_call>"))
    value = _python_literal(body.strip())
    if value is not _UNREADABLE:
        return [_hermes_attempt(obj) for obj in (value if isinstance(value, list) else [value])], end
    reason = f"{error.msg} at line {error.lineno} column {error.colno}"
    if close == -1:
        return [_Attempt(problem=_cut_off("</tool_call>") + f" (its JSON is incomplete: {reason})")], end
    return [_Attempt(problem=f"the JSON inside <tool_call> is invalid ({reason}). {_syntax_hint('hermes')}")], end


def _hermes_attempt(obj: Any) -> _Attempt:
    if isinstance(obj, dict) and isinstance(obj.get("function"), dict):  # OpenAI-shaped
        obj = obj["function"]
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"].strip():
        return _Attempt(problem=f'expected a JSON object with "name" and "arguments", got {_preview(obj, 60)}. '
                                f"{_syntax_hint('hermes')}")
    arguments, problem = _arguments_object(obj.get("arguments", obj.get("parameters")))
    return _Attempt(name=obj["name"].strip(), arguments=arguments, problem=problem)


def _native_attempt(call: dict[str, Any]) -> _Attempt:
    function = call.get("function") or {}
    name = str(function.get("name") or "").strip()
    arguments, problem = _arguments_object(function.get("arguments"))
    return _Attempt(name=name, arguments=arguments, id=str(call.get("id") or ""),
                    problem=problem if name else "the call has no function name.")


def _arguments_object(value: Any) -> tuple[dict[str, Any], str | None]:
    """Arguments as a dict, also when sent as a JSON (or Python-literal) string."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}, None
    if isinstance(value, str):
        parsed = _literal(value.strip())
        if parsed is _UNREADABLE:
            return {}, f"its arguments are not valid JSON ({_preview(value, 80)}); send them as one JSON object."
        value = parsed
    if not isinstance(value, dict):
        return {}, f"its arguments must be a JSON object of parameter names to values, got {_preview(value, 60)}."
    return value, None


# -- schemas: names, required parameters, value types --------------------------------------
def _schemas(tools: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tool name -> its `parameters` schema, from an OpenAI `tools` list (or bare function dicts)."""
    schemas: dict[str, dict[str, Any]] = {}
    for tool in tools:
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            schemas[function["name"]] = function.get("parameters") or {}
    return schemas


def _check(number: int, attempt: _Attempt, schemas: dict[str, dict[str, Any]]) -> ToolCall | str:
    """The call with converted arguments, or what is wrong with it, for the model."""
    where = f"Tool call {number}" + (f" ({attempt.name})" if attempt.name else "")
    if attempt.problem:
        return f"{where}: {attempt.problem}"
    if not schemas:
        return ToolCall(attempt.name, attempt.arguments, attempt.id)
    if attempt.name not in schemas:
        return f"Tool call {number}: there is no tool named {attempt.name!r}. Available tools: {', '.join(schemas)}."
    schema = schemas[attempt.name]
    properties = schema.get("properties") or {}
    arguments: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in attempt.arguments.items():
        try:
            arguments[key] = _convert(value, properties.get(key), attempt.raw_text)
        except ValueError as exc:
            problems.append(f"parameter {key!r} {exc}")
    missing = [name for name in schema.get("required") or [] if name not in attempt.arguments]
    if missing:
        problems.append("missing required parameter" + ("s " if len(missing) > 1 else " ") + ", ".join(missing))
    if problems:
        return f"{where}: {'; '.join(problems)}. {attempt.name} takes: {_signature(schema)}."
    return ToolCall(attempt.name, arguments, attempt.id)


def _convert(value: Any, schema: Any, raw_text: bool) -> Any:
    """`value` as the schema's type; raises ValueError('must be ..., got ...') when it cannot be."""
    if not isinstance(schema, dict):  # a parameter the tool does not declare: the tool decides
        return value
    types = _types(schema)
    if not types:  # no usable type: JSON if it reads as JSON, else the text
        if raw_text and isinstance(value, str):
            parsed = _literal(value.strip(), python=False)
            return value if parsed is _UNREADABLE else parsed
        return value
    if _has_type(value, types):
        return value
    if isinstance(value, str):
        return _from_text(value, types)
    if "integer" in types and isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"must be {_type_words(types)}, got {_preview(value, 60)}")


def _from_text(text: str, types: set[str]) -> Any:
    stripped = text.strip()
    lowered = stripped.lower()
    if "null" in types and lowered in ("null", "none"):
        return None
    if "boolean" in types and lowered in ("true", "false"):
        return lowered == "true"
    number = _number(stripped) if "integer" in types or "number" in types else None
    if number is not None and ("number" in types or float(number).is_integer()):
        return number if "number" in types else int(number)
    for kind, python_type in (("array", list), ("object", dict)):
        if kind in types and isinstance(parsed := _literal(stripped), python_type):
            return parsed
    raise ValueError(f"must be {_type_words(types)}, got {_preview(text, 60)}")


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _types(schema: dict[str, Any]) -> set[str]:
    declared = schema.get("type")
    names = [declared] if isinstance(declared, str) else list(declared) if isinstance(declared, list) else []
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key) or []:
            if isinstance(option, dict):
                names += _types(option)
    normalised = {_TYPE_ALIASES.get(str(name).strip().lower(), str(name).strip().lower()) for name in names}
    return normalised & _PYTHON_TYPES.keys()


def _has_type(value: Any, types: set[str]) -> bool:
    if isinstance(value, bool):  # bool is an int to Python, not to JSON schema
        return "boolean" in types
    return any(isinstance(value, _PYTHON_TYPES[name]) for name in types)


def _type_words(types: set[str]) -> str:
    return " or ".join(_TYPE_WORDS[name] for name in _TYPE_WORDS if name in types)


def _signature(schema: dict[str, Any]) -> str:
    """`path: string, view_range?: array of integer`: what the model needs to retry."""
    required = set(schema.get("required") or [])
    parts = []
    for name, field_schema in (schema.get("properties") or {}).items():
        field_schema = field_schema if isinstance(field_schema, dict) else {}
        kind = "/".join(sorted(_types(field_schema))) or "any"
        items = field_schema.get("items")
        if kind == "array" and isinstance(items, dict) and _types(items):
            kind += " of " + "/".join(sorted(_types(items)))
        parts.append(f"{name}{'' if name in required else '?'}: {kind}")
    return ", ".join(parts) or "no parameters"


def _literal(text: str, python: bool = True) -> Any:
    """JSON, else (when `python`) a Python literal such as `{'a': True}`; `_UNREADABLE` if neither."""
    try:
        return _JSON.decode(text)
    except json.JSONDecodeError:
        return _python_literal(text) if python else _UNREADABLE


def _python_literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _UNREADABLE


# -- error wording --------------------------------------------------------------------------
def _cut_off(closer: str) -> str:
    return (f"the reply was cut off before {closer}, so the call was not run. Send it again complete; if it "
            "carries a lot of text, split the work into smaller calls.")


def _syntax_hint(fmt: Format) -> str:
    example = ToolCall("TOOL_NAME", {"PARAMETER": "VALUE"})
    if fmt in ("hermes", "xml"):
        return "Write each call as:\n" + render_assistant_text([example], fmt)
    return ("Write each call as:\n" + render_assistant_text([example], "xml") + "\nor as:\n"
            + render_assistant_text([example], "hermes"))


def _preview(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


# -- rendering: tools into the prompt, calls back into history ------------------------------
_HERMES_INSTRUCTIONS = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""

# The Qwen3-Coder template's wording, minus its last reminder ("if there is no function call
# available, answer like normal"): the agent loop wants a call in every reply.
_XML_INSTRUCTIONS = """You have access to the following functions:

<tools>
{tools}
</tools>

If you choose to call a function ONLY reply in the following format with NO suffix:

<tool_call>
<function=example_function_name>
<parameter=example_parameter_1>
value_1
</parameter>
<parameter=example_parameter_2>
This is the value for the second parameter
that can span
multiple lines
</parameter>
</function>
</tool_call>

<IMPORTANT>
Reminder:
- Function calls MUST follow the specified format: an inner <function=...></function> block must be nested within <tool_call></tool_call> XML tags
- Required parameters MUST be specified
- You may provide optional reasoning for your function call in natural language BEFORE the function call, but NOT after
</IMPORTANT>"""


def render_tool_instructions(tools: list[dict[str, Any]], fmt: TextFormat) -> str:
    """The system-prompt text that declares the tools and the call syntax, for servers without native tools."""
    if fmt == "hermes":
        return _HERMES_INSTRUCTIONS.format(tools="\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools))
    if fmt == "xml":
        functions = [tool.get("function", tool) for tool in tools]
        return _XML_INSTRUCTIONS.format(tools="\n".join(_xml_tool(function) for function in functions))
    raise ValueError(f"tool instructions exist for hermes and xml, not {fmt!r}")


def _xml_tool(function: dict[str, Any]) -> str:
    """One `<function>` entry as the Qwen3-Coder template renders it (plus `enum`, which it drops)."""
    parameters = function.get("parameters") or {}
    lines = ["<function>", f"<name>{function.get('name', '')}</name>",
             f"<description>{str(function.get('description') or '').strip()}</description>", "<parameters>"]
    for name, fields in (parameters.get("properties") or {}).items():
        lines += ["<parameter>", f"<name>{name}</name>"]
        for key, value in sorted((fields if isinstance(fields, dict) else {}).items(), key=_template_order):
            if key == "required" or value is None:
                continue
            tag = re.sub(r"[-\s]", "_", key).replace("$", "")
            text = value.strip() if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            lines.append(f"<{tag}>{text}</{tag}>")
        lines.append("</parameter>")
    if parameters.get("required"):
        lines.append("<required>[" + ", ".join(f"`{name}`" for name in parameters["required"]) + "]</required>")
    lines += ["</parameters>", "</function>"]
    return "\n".join(lines)


def _template_order(item: tuple[str, Any]) -> int:
    return {"type": 0, "description": 1}.get(item[0], 2)


def render_assistant_text(calls: list[ToolCall], fmt: TextFormat) -> str:
    """The calls as the model itself writes them, so the history stays in its own format."""
    if fmt == "hermes":
        blocks = [json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False) for call in calls]
    elif fmt == "xml":
        blocks = [_xml_function(call) for call in calls]
    else:
        raise ValueError(f"calls can be written as hermes or xml text, not {fmt!r}")
    return "\n".join(f"<tool_call>\n{block}\n</tool_call>" for block in blocks)


def _xml_function(call: ToolCall) -> str:
    parameters = "".join(f"<parameter={name}>\n{_as_text(value)}\n</parameter>\n"
                         for name, value in call.arguments.items())
    return f"<function={call.name}>\n{parameters}</function>"


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
