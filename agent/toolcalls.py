"""Tool calls out of one model reply, in whatever form the server handed them back.

A vLLM/SGLang/llama.cpp server started without a tool parser returns calls as plain text, and one
with a parser leaves malformed calls in the text. So besides the native `tool_calls` list we read
what Qwen-family models write as text:

- Qwen3-Coder XML, `<tool_call><function=NAME><parameter=P>value</parameter></function></tool_call>`,
  its values raw text converted by the tool's JSON-schema types as vLLM's
  (`vllm/entrypoints/openai/tool_parsers/qwen3coder_tool_parser.py`, `_convert_param_value`) and
  SGLang's (`python/sglang/srt/function_call/qwen3_coder_detector.py`) parsers do.
- Hermes JSON, `{"name": ..., "arguments": {...}}`, inside `<tool_call>` or inside what llama.cpp's
  Hermes 2 Pro parser also accepts (`common/chat.cpp`, `common_chat_parse_hermes_2_pro`): the
  wrappers `<function_call>`, `<tool>`, `<tools>`, `<response>`, `<json>`, `<xml>`, `<JSON>`, code
  fences, and `<function=NAME>` / `<function name="NAME">` followed by JSON arguments; or bare on
  its own lines, one object or a list of them, which is how Qwen2.5-Coder writes calls when no tool
  parser reads them.

Text around calls never costs a call: a wrapper or `<function=` header counts only when a call
follows it (a `<tool_call>` alone on its line also when its call is broken or cut off; a wrapper never
closed only when nothing but blanks follows its JSON, since the reply was cut there), and bare or
fenced JSON only when it is shaped like a call (the keys name/arguments/parameters, or OpenAI's
type/function/id around them) and names an offered tool or carries arguments. Without a tag, JSON
is a call only when it stands alone on its own lines (not indented under a list item) or fills a
```json/```xml/``` block with calls and nothing else; in a sentence, a list item, a quote, inline code
or another code block it is prose, never run, and the model is told
so (`_calls_not_run`; docs/tool-calls.md). A parameter value
runs to the `</parameter>` that is followed by the next `<parameter=` or by the end of the call, so
values may themselves contain parameter tags; when two readings fit the tool's schema equally well,
the call is refused as ambiguous instead of guessed.

Calls inside the reasoning (`<think>...</think>`, or the server's reasoning field) are not run: they
are drafts that the answer often repeats or rejects, and running them would run a call twice or run
one the model decided against. When the answer has no call of its own, the model is told exactly
that its call sat in the reasoning.

Anything that looks like an attempted call but cannot be run becomes an error written for the model:
what was wrong and what is expected. Valid calls next to it are still returned.
"""

from __future__ import annotations

import ast
import bisect
import io
import itertools
import json
import math
import re
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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


Schemas = dict[str, dict[str, Any]]  # tool name -> its `parameters` JSON schema
Span = tuple[int, int]

# Where a call may start; each candidate is then read, and dropped as prose when no call follows it.
_CANDIDATE = re.compile(r"<(tool_call|function_call|tools?|response|json|xml|JSON)>"  # llama.cpp's wrapper tags
                        r"|<function(?:=|\s+name=\")"  # Qwen3-Coder / llama.cpp function headers
                        r"|^[ \t]*```[\w+-]*[ \t]*$"  # a code fence's opening line
                        r"|^ {0,3}[\[{]", re.M)  # bare JSON starting a line (4 spaces or a tab: Markdown's code)
_OPEN_TAG_BEFORE = re.compile(r"<(?:tool_call|function_call|tools?|response|json|xml|JSON)>\s*\Z")
# a Markdown list item's first line: `- `, `* `, `+ `, `1. `, `2) `
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")
_FENCE_CLOSE = re.compile(r"^[ \t]*```[ \t]*$", re.M)
_FENCE_LINE = re.compile(r"^[ \t]*```([^`\n]*)$", re.M)  # a Markdown fence line, opening or closing
_CALL_FENCES = {"", "json", "xml"}  # what llama.cpp's Hermes parser reads calls from (```(?:xml|json)?)
_LINE_REST = re.compile(r"[ \t]*(?:</tool_call>[ \t]*)?(?:\n|\Z)")  # after a bare call: nothing else on its line
# JSON that starts like a call: `{"name": ...`, `[{"arguments": ...`, `{'type': 'function', ...`.
_JSON_CALL_START = re.compile(r"[\[{]\s*(?:\{\s*)?[\"'](?:name|arguments|parameters|type|function)[\"']\s*:")
_JSON_CALL_NAME = re.compile(r"[\"']name[\"']\s*:\s*[\"']([^\"'\n]{1,100})[\"']")
_CALL_KEYS = {"name", "arguments", "parameters"}
_OPENAI_KEYS = {"type", "function", "id"}

_FUNCTION_HEADER = re.compile(r"<function(?:=([^>\n]*)|\s+name=\"([^\"\n]*)\")>")
# A call ends at the first `</function>` that is followed by what can follow a call; a bare
# `</function>` inside a parameter value (HTML, XML, code) is followed by more value instead.
_FUNCTION_END = re.compile(r"</function>\s*(?:</tool_call>|(?=<tool_call>|<function[= ])|\Z)")
# ...unless the text after that end holds a dangling `</parameter></function>` and no new call:
# then the first end was inside a value (a page that shows the call syntax) and the call runs on.
_DANGLING_END = re.compile(r"</parameter>\s*</function>\s*(?:</tool_call>|\Z)")
_TRAILING_CALL_CLOSE = re.compile(r"\s*</tool_call>")
_PARAM_TAG = re.compile(r"<parameter=([^>\n]*)>")
# Tolerates the `</parameter1>` / `</parameter/>` / `</parameter` drift seen in the wild.
_PARAM_CLOSE = re.compile(r"</parameter[^<>\n]{0,3}>?")
_PARAM_CLOSE_AT_END = re.compile(r"</parameter[^<>\n]{0,3}>?\s*\Z")
_HERMES_CLOSE = re.compile(r"[\s}\]]*(?:```\s*)?</tool_call>")  # tolerates a stray brace, a fence around the JSON
_FENCE_OPEN = re.compile(r"```[\w+-]*[ \t]*\n\s*")
_EMPTY_FENCE = re.compile(r"```[\w+-]*\s*```")  # left behind when a call sat in a code fence
_MAX_PARAMETER_TAGS = 200  # beyond this many `<parameter=` tags in one call, readings are not searched
_MAX_READING_STATES = 5_000
_JSON_WINDOW = 16_384  # characters a JSON call is first decoded within
_MAX_PROSE_CALLS = 100  # call-shaped starts looked at in the prose of one reply, for the "not run" notices
_MAX_NOTICES = 3
_MAX_LIST_LOOKBACK = 50  # lines looked back over for the list item a line is indented under



def _finite_or_text(text: str) -> float | str:
    """A JSON number as a float, but `1e400`, `NaN` and `Infinity` stay the text the model wrote: a
    non-finite float is no valid argument and would make the trajectory line invalid JSON."""
    value = float(text)
    return value if math.isfinite(value) else text


# models put raw newlines inside JSON strings
_JSON = json.JSONDecoder(strict=False, parse_float=_finite_or_text, parse_constant=str)
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
    schemas = _schemas(tools)
    text, thought = split_thinking(content or "", lambda whole: _scan_text(whole, fmt, schemas)[2])
    reasoning = "\n\n".join(part.strip() for part in (reasoning, thought) if part and part.strip()) or None
    problems: list[str] = []
    if fmt == "native" or (fmt == "auto" and native_calls):
        attempts = [_native_attempt(call) for call in native_calls or []]
        text = text.strip()
        if fmt == "native" and not native_calls and _scan_text(text, "auto", schemas)[0]:
            problems.append("Your reply contains a tool call written as text, which the server did not recognise as "
                            "a tool call, so nothing was run. Check the call's syntax and send it again.")
    else:
        attempts, text, _ = _scan_text(text, fmt, schemas)
        problems += _calls_not_run(text, schemas)
    if not attempts and not problems and reasoning:
        problems += _calls_in_reasoning(reasoning, fmt, schemas)
    result = ParsedReply(content=text, reasoning=reasoning, errors=problems)
    for number, attempt in enumerate(attempts, 1):
        checked = _check(number, attempt, schemas)
        if isinstance(checked, ToolCall):
            result.calls.append(checked)
        else:
            result.errors.append(checked)
    return result


def split_thinking(text: str, call_spans: Callable[[str], list[Span]] | None = None) -> tuple[str, str | None]:
    """(answer, thinking): a leading `<think>` block, or all before a `</think>` whose opener was in the prompt.

    `call_spans(text)` gives the (start, end) of each call in the text, so that a `</think>` inside a
    parameter value does not end the thinking; without it, only a `</think>` before the first call does.
    Calls before that `</think>` are thinking too: Qwen3's template opens `<think>` in the prompt.
    """
    if text.lstrip().startswith("<think>"):
        thought, closed, rest = text.lstrip()[len("<think>"):].partition("</think>")
        return (rest if closed else ""), thought.strip() or None
    close = text.find("</think>")
    if close == -1:
        return text, None
    spans: list[Span] = call_spans(text) if call_spans else []
    if not call_spans:
        first_call = _CANDIDATE.search(text)
        spans = [(first_call.start(), len(text))] if first_call else []
    while close != -1 and any(start <= close < end for start, end in spans):
        close = text.find("</think>", close + 1)
    if close == -1:
        return text, None
    return text[close + len("</think>"):], text[:close].strip() or None


def _calls_in_reasoning(reasoning: str, fmt: Format, schemas: Schemas) -> list[str]:
    """The one error for a reply whose only calls sat in its reasoning; such calls are never run."""
    names = [attempt.name for attempt in _scan_text(reasoning, fmt, schemas)[0] if attempt.name]
    if not names:
        return []
    which = ", ".join(dict.fromkeys(names))
    return [f"Your tool call ({which}) was written inside your reasoning (<think>...</think>), so it was not run: "
            "calls are only read from the answer after </think>. Write the call again after </think>."]


def _calls_not_run(prose: str, schemas: Schemas) -> list[str]:
    """One notice per call-shaped text left in the prose: it was not run, and the model is told why.

    Bare JSON is a call only when it stands alone on its own lines, or fills a ```json, ```xml or plain
    code block, or sits in a wrapper tag; a `<function=NAME>` header only at the start of a line or in
    `<tool_call>`. In a sentence, a `> quote`, `inline code` or another kind of code block such text is
    an example or an explanation, which must never run, nor vanish without a word.
    """
    found: list[tuple[int, str, str]] = []  # (where, tool, how it was written)
    pos = 0
    for _ in range(_MAX_PROSE_CALLS):  # each look is bounded by the window: prose full of `{"name":` stays linear
        if not (start := _JSON_CALL_START.search(prose, pos)):
            break
        at = start.start()
        try:
            value, end = _JSON.raw_decode(prose[at:at + _JSON_WINDOW])
            pos = at + end
        except json.JSONDecodeError:
            value, pos = _python_literal(prose[at:min(_line_end(prose, at), at + _JSON_WINDOW)].strip()), at + 1
        objects = value if isinstance(value, list) else [value]
        calls = [obj for obj in objects if _call_shaped(obj, schemas) and _plausible_arguments(obj)]
        if calls:
            found.append((at, _hermes_attempt(calls[0]).name, "JSON"))
    for header in itertools.islice(_FUNCTION_HEADER.finditer(prose), _MAX_PROSE_CALLS):
        name = (header.group(1) if header.group(1) is not None else header.group(2)).strip().strip("\"'")
        after = header.end() + len(prose[header.end():header.end() + 200]) - len(
            prose[header.end():header.end() + 200].lstrip(" \t\r\n>"))  # blanks, and `>` of a quote's lines
        if prose.startswith(("<parameter=", "{"), after) and (not schemas or name in schemas):
            found.append((header.start(), name, f"<function={name}>"))
    notices = [f"The call to {name} written as {how} {_where(prose, at)} was NOT run: JSON is a call only when it "
               "stands alone on its own lines or fills a ```json block, and <function=...> only when it starts a "
               "line; inside <tool_call></tool_call> either is always a call. If you meant to run it, write it "
               "again that way." for at, name, how in sorted(found)[:_MAX_NOTICES]]
    if len(found) > _MAX_NOTICES:
        notices.append("... and more call-shaped text in the prose that was not run either.")
    return notices


def _plausible_arguments(obj: dict[str, Any]) -> bool:
    """Arguments that could be a call's: absent, an object or JSON text (`{'arguments': 1}` in code is not)."""
    inner = obj["function"] if isinstance(obj.get("function"), dict) else obj
    arguments = inner.get("arguments", inner.get("parameters"))
    return arguments is None or isinstance(arguments, (dict, str))


def _where(text: str, pos: int) -> str:
    """Where prose JSON sits, for the notice: a code block, a quote, a list item, inline code, after an unclosed
    wrapper tag or in a sentence."""
    block = _block_at(_code_blocks(text, 0), pos)
    if block is not None and block[1].lower() in _CALL_FENCES and _in_list_item(text, _skip_blanks(text, block[0])):
        return "in a list item"
    if block is not None:
        return f"inside a ```{block[1]} code block that holds more than the call" if block[1].lower() in _CALL_FENCES \
            else f"inside a ```{block[1]} code block"
    line_start = text.rfind("\n", 0, pos) + 1
    if text[line_start:pos].lstrip().startswith(">"):
        return "in a quote"
    if _LIST_ITEM.match(text, line_start, pos) or (not text[line_start:pos].strip() and _in_list_item(text, pos)):
        return "in a list item"
    if _after_call_tag(text, pos):
        return "after an unclosed <tool_call> (or other wrapper) with text after it"
    if not text[line_start:pos].strip() and text[line_start:pos].expandtabs(4).startswith("    "):
        return "in an indented code block"
    if _in_inline_code(text, pos):
        return "in `inline code`"
    return "inside a sentence"


def _scan_text(text: str, fmt: Format, schemas: Schemas) -> tuple[list[_Attempt], str, list[Span]]:
    """Every call written in the text, in order; the text around them; where each call was."""
    attempts: list[_Attempt] = []
    kept: list[str] = []
    spans: list[Span] = []
    pos = 0
    fences = _fence_lines(text)
    blocks = _code_blocks(text, 0, fences)
    while found := _next_call(text, pos, fmt, schemas, blocks):
        start, read, end = found
        kept.append(text[pos:start])
        attempts += read
        spans.append((start, end))
        whole_block = (block := _block_at(blocks, start)) is not None and block[0] == start and block[2] == end
        if not whole_block and "```" in text[start:end]:  # a value that shows fences: pair those after it afresh
            blocks = _code_blocks(text, end, fences)
        pos = end
    kept.append(text[pos:])
    return attempts, _EMPTY_FENCE.sub("", "".join(kept)).strip(), spans


def _next_call(text: str, pos: int, fmt: Format, schemas: Schemas,
               blocks: list[tuple[int, str, int]]) -> tuple[int, list[_Attempt], int] | None:
    for candidate in _CANDIDATE.finditer(text, pos):
        if not candidate.group(1) and not candidate.group(0).startswith("<"):  # bare JSON or a fence line
            block = _block_at(blocks, candidate.start())
            if block is not None and candidate.start() != block[0]:
                continue  # inside a code block (or its closing line): only the block as a whole can be a call
        read = _read_candidate(text, candidate, fmt, schemas)
        if read is not None:
            return candidate.start(), read[0], read[1]
    return None


def _block_at(blocks: list[tuple[int, str, int]], pos: int) -> tuple[int, str, int] | None:
    """The code block (from `_code_blocks`, in order) that `pos` lies in, if any."""
    index = bisect.bisect_right(blocks, (pos, "\U0010ffff")) - 1  # the last block starting at or before `pos`
    return blocks[index] if index >= 0 and blocks[index][0] <= pos < blocks[index][2] else None


def _code_blocks(text: str, pos: int, lines: list[tuple[int, int, str]] | None = None) -> list[tuple[int, str, int]]:
    """Markdown code blocks from `pos` on: (start of the opening line, its language, end of the closing line).
    `lines`, the text's fence lines as `_fence_lines` gives them, spares reading the text again."""
    lines = lines if lines is not None else _fence_lines(text)
    blocks: list[tuple[int, str, int]] = []
    opening: tuple[int, str] | None = None
    for start, end, language in lines[bisect.bisect_left(lines, (pos,)):]:
        if opening is None:
            opening = (start, language)
        elif not language:
            blocks.append((*opening, end))
            opening = None
    if opening is not None:
        blocks.append((*opening, len(text)))
    return blocks


def _fence_lines(text: str) -> list[tuple[int, int, str]]:
    """(start, end, language) of every fence line (```lang or ```), in order."""
    return [(line.start(), line.end(), line.group(1).strip()) for line in _FENCE_LINE.finditer(text)]


def _read_candidate(text: str, candidate: re.Match[str], fmt: Format,
                    schemas: Schemas) -> tuple[list[_Attempt], int] | None:
    """The call(s) starting at `candidate` and where they end, or None when it is only text."""
    start, wrapper = candidate.start(), candidate.group(1)
    if wrapper:
        if _in_inline_code(text, start):
            return None
        if wrapper == "tool_call":
            return _read_tool_call(text, start, candidate.end(), fmt, schemas)
        at = _skip_space(text, candidate.end())
        return _read_json_calls(text, at, fmt, schemas, close_tag=f"</{wrapper}>")
    token = candidate.group(0)
    if token.startswith("<function"):
        header = _FUNCTION_HEADER.match(text, start)
        after = _skip_space(text, header.end()) if header else start
        if not (header and _at_line_start(text, start) and text.startswith(("<parameter=", "{", "</function>"), after)):
            return None
        read = _read_xml(text, start, schemas)
        if _after_call_tag(text, start) and not _call_ends_its_wrapper(text, read[1]):
            return None  # after a `<tool_call>` refused as prose (see `_read_tool_call`): prose too
        return _checked_format(*read, "xml", fmt)
    if token.lstrip().startswith("```"):
        if token.strip().strip("`").strip().lower() not in _CALL_FENCES:
            return None  # ```python, ```text, ```console: an example, never a call
        if _in_list_item(text, start + len(token) - len(token.lstrip())):
            return None  # a block indented under `1. Clean the build:`: part of the item, reported as not run
        return _read_fence(text, candidate.end(), fmt, schemas)
    if _in_list_item(text, candidate.end() - 1):
        return None  # `1. Clean the build:` and the call indented below it: a plan's step, reported as not run
    read = _read_json_calls(text, candidate.end() - 1, fmt, schemas)
    if read is None or any(attempt.problem for attempt in read[0]):
        return read
    json_end = read[1]
    while json_end > 0 and text[json_end - 1].isspace():  # back over the blanks the JSON reader skipped
        json_end -= 1
    rest = _LINE_REST.match(text, json_end)
    # `{...} is what I would run`: prose, reported as not run by `_calls_not_run`
    return (read[0], max(read[1], rest.end())) if rest else None


def _read_tool_call(text: str, start: int, after_tag: int, fmt: Format,
                    schemas: Schemas) -> tuple[list[_Attempt], int] | None:
    at = _skip_space(text, after_tag)
    if (fence := _FENCE_OPEN.match(text, at)) and text.startswith(("{", "["), fence.end()):
        at = fence.end()  # <tool_call>```json {...} ```</tool_call>
    if text.startswith("<function", at):
        read = _read_xml(text, at, schemas)
        if not _call_ends_its_wrapper(text, read[1]):
            return None  # `I would do <tool_call><function=bash>...</function> but only after asking`: prose
        return _checked_format(*read, "xml", fmt)
    if text.startswith(("{", "["), at):
        read = _read_hermes(text, at)
        return None if read is None else _checked_format(*read, "hermes", fmt)
    # Otherwise the tag counts only when it stands alone on its line (a broken or cut-off call);
    # elsewhere it is prose that names the tag: "wrap each call in <tool_call> tags".
    if not (_at_line_start(text, start) and (at >= len(text) or "\n" in text[after_tag:at])):
        return None
    if at >= len(text):
        return [_Attempt(problem=_cut_off("</tool_call>"))], len(text)
    close = text.find("</tool_call>", at)
    if close == -1 or re.search(r"<tool_call>|<function[= ]", text[at:close]):
        return None  # no closer of its own: the next call's closer must not swallow that call
    end = close + len("</tool_call>")
    return [_Attempt(problem=f"could not read the call {_preview(text[at:close], 60)}. {_syntax_hint(fmt)}")], end


def _checked_format(found: list[_Attempt], end: int, written: TextFormat, fmt: Format) -> tuple[list[_Attempt], int]:
    """A session told to use one text syntax refuses the other, showing the one it expects."""
    if fmt in ("hermes", "xml") and written != fmt:
        return [_Attempt(problem=f"this call is written in {written} syntax but this session uses {fmt} syntax. "
                                 f"{_syntax_hint(fmt)}")], end
    return found, end


# -- Qwen3-Coder XML -------------------------------------------------------------------------
def _read_xml(text: str, at: int, schemas: Schemas) -> tuple[list[_Attempt], int]:
    header = _FUNCTION_HEADER.match(text, at)
    if header is None:
        span = _xml_call_end(text, at)
        end = span[1] if span else len(text)
        return [_Attempt(problem=f"the function tag in {_preview(text[at:end], 60)} is malformed. "
                                 f"{_syntax_hint('xml')}")], end
    name = (header.group(1) if header.group(1) is not None else header.group(2)).strip().strip("\"'")
    span = _xml_call_end(text, header.end())
    if span is None:
        return [_Attempt(name=name, problem=_cut_off("</function></tool_call>"))], len(text)
    body_end, end = span
    attempt = _xml_arguments(text[header.end():body_end], schemas.get(name))
    attempt.name = name
    return [attempt], end


def _xml_call_end(text: str, pos: int) -> tuple[int, int] | None:
    """(end of the function body, end of the call), or None when the reply stops inside the call."""
    if match := _FUNCTION_END.search(text, pos):
        body_end, end = match.start(), match.end()
        for later in _DANGLING_END.finditer(text, end):
            if _FUNCTION_HEADER.search(text, end, later.start()):
                break  # a new call starts before it: that one owns it
            body_end = later.start() + len("</parameter>")
            end = later.end()
        return body_end, end
    close = text.find("</function>", pos)
    if close != -1:
        after = _TRAILING_CALL_CLOSE.match(text, close + len("</function>"))
        return close, after.end() if after else close + len("</function>")
    close = text.find("</tool_call>", pos)  # `</function>` dropped
    return (close, close + len("</tool_call>")) if close != -1 else None


def _xml_arguments(body: str, schema: dict[str, Any] | None) -> _Attempt:
    openers = list(_PARAM_TAG.finditer(body))
    if not openers:
        rest = body.strip()
        if not rest:
            return _Attempt()
        as_json = _literal(rest)  # `<function=NAME>{"a": 1}</function>`, as llama.cpp also accepts
        if isinstance(as_json, dict):
            return _Attempt(arguments=as_json)
        return _Attempt(problem=f"no parameter could be read from {_preview(rest, 60)}; write each parameter as "
                                "<parameter=NAME>\nVALUE\n</parameter>.")
    if any(not opener.group(1).strip().strip("\"'") for opener in openers):
        return _Attempt(problem="a <parameter=> tag has no name; write each parameter as "
                                "<parameter=NAME>\nVALUE\n</parameter>.")
    reading = _ParameterReading(body, openers, schema or {})
    try:
        splits = reading.best()
    except _Ambiguous as exc:
        return _Attempt(problem=str(exc))
    arguments: dict[str, Any] = {}
    for first, stop in zip(splits, [*splits[1:], None]):
        value_end = len(body) if stop is None else reading.value_end[stop]
        value = body[openers[first].end():value_end]
        if stop is None:
            value = _PARAM_CLOSE_AT_END.sub("", value)
        arguments[reading.names[first]] = _strip_one_newline(value)
    return _Attempt(arguments=arguments, raw_text=True)


class _Ambiguous(Exception):
    """The parameters of one XML call can be read in more than one way."""


class _ParameterReading:
    """Which `<parameter=` tags of a call start a parameter, and which sit inside another's value.

    A tag can start a parameter when only blank space separates it from a `</parameter>` before it
    ("strong"), or, for a model that dropped its closer, when it starts a line ("weak"). A reading
    gives each parameter once; it costs 3 for each strong tag it leaves inside a value, 1 for each
    weak one, 1 for each tag left unpaired inside a value, 2 for each name the tool does not declare,
    2 for each value outside its parameter's `enum` or not readable as its number/boolean type, and 2
    for each required parameter it lacks.
    The cheapest reading wins; two different cheapest readings make the call ambiguous. So a
    Markdown page in `file_text` that shows `<parameter=path>` lines (issue 14) reads as one value,
    a dropped `</parameter>` before a declared parameter is forgiven, and a value that holds
    `</parameter>` then `<parameter=path>` while `path` is also given after it is refused, not guessed.
    """

    def __init__(self, body: str, openers: list[re.Match[str]], schema: dict[str, Any]) -> None:
        self.body, self.openers = body, openers
        self.names = [opener.group(1).strip().strip("\"'") for opener in openers]
        properties = schema.get("properties")
        self.fields: dict[str, Any] = properties if isinstance(properties, dict) else {}
        self.declared = set(properties) if isinstance(properties, dict) and properties else None
        required = {name for name in schema.get("required") or [] if isinstance(name, str)}
        # Only names that several tags carry can clash, so only they are tracked through a reading;
        # a required name that one tag carries is missing exactly when that tag is left inside a value.
        self.repeated = {name for name in self.names if self.names.count(name) > 1}
        self.required = required & self.repeated
        self.value_end = [0]
        self.kind_cost = [0]  # what leaving each tag inside a value costs; 0: it cannot start a parameter
        for opener, name in zip(openers[1:], self.names[1:]):
            closer = _closer_before(body, opener.start())
            self.value_end.append(opener.start() if closer is None else closer)
            kind = 3 if closer is not None else 1 if _at_line_start(body, opener.start()) else 0
            self.kind_cost.append(kind + (2 if name in required and name not in self.repeated else 0))
        self.swallowed = [0]  # prefix sums of kind_cost
        for cost in self.kind_cost:
            self.swallowed.append(self.swallowed[-1] + cost)
        self.splits = [index for index, cost in enumerate(self.kind_cost) if cost]
        self.memo: dict[tuple[int, frozenset[str]], tuple[int, int, list[int]]] = {}
        trailing = _PARAM_CLOSE_AT_END.search(body)
        self.final_end = trailing.start() if trailing else len(body)  # where the last value ends
        self.tags = sorted([(opener.start(), 1) for opener in openers]
                           + [(closer.start(), -1) for closer in _PARAM_CLOSE.finditer(body)])
        self.unpaired: dict[int, dict[int | None, int]] = {}

    def best(self) -> list[int]:
        """Indexes of the tags that start parameters; raises _Ambiguous."""
        if len(self.names) > _MAX_PARAMETER_TAGS:
            raise _Ambiguous(f"its {len(self.names)} <parameter= tags are too many to tell apart from text inside "
                             "values; split the work into smaller calls.")
        _, ways, splits = self._from(0, frozenset())
        if ways > 1:
            raise _Ambiguous("its parameters cannot be told apart: a value contains lines that look like "
                             "</parameter> followed by <parameter=...>, and more than one reading fits the tool. "
                             "Give every parameter, each closed with </parameter>, and write text that shows these "
                             "tags in a separate edit.")
        return splits

    def _from(self, first: int, used: frozenset[str]) -> tuple[int, int, list[int]]:
        """(cost, how many readings cost that little (at most 2), one of them) from the tag `first` on."""
        name = self.names[first]
        key = (first, used)
        if key in self.memo:
            return self.memo[key]
        if len(self.memo) >= _MAX_READING_STATES:
            raise _Ambiguous("its parameter tags can be read in too many ways; send fewer parameters per call, "
                             "each closed with </parameter>.")
        used = used | ({name} & self.repeated)
        own = 2 if self.declared is not None and name not in self.declared else 0
        last = len(self.names)
        unmatched = self._unmatched(first)
        options = [(self.swallowed[last] - self.swallowed[first + 1] + 2 * len(self.required - used)
                    + self._misfit(first, None) + unmatched[None], 1, [])]
        for stop in self.splits[bisect.bisect_right(self.splits, first):]:  # the value ends at tag `stop` instead
            if self.names[stop] not in used:  # each parameter once
                rest = self._from(stop, used)
                options.append((self.swallowed[stop] - self.swallowed[first + 1] + self._misfit(first, stop)
                                + unmatched[stop] + rest[0], rest[1], rest[2]))
        cost = min(option[0] for option in options)
        cheapest = [option for option in options if option[0] == cost]
        best = (cost + own, min(2, sum(option[1] for option in cheapest)), [first, *cheapest[0][2]])
        self.memo[key] = best
        return best

    def _unmatched(self, first: int) -> dict[int | None, int]:
        """Parameter tags left unpaired inside the value of tag `first`, for each tag it may end at (None: the
        call's end). A page that quotes call syntax quotes it whole, so the right reading pairs its tags."""
        if first in self.unpaired:
            return self.unpaired[first]
        counts: dict[int | None, int] = {}
        start = self.openers[first].end()
        tags = iter(self.tags[bisect.bisect_left(self.tags, (start, -1)):])
        tag = next(tags, None)
        depth = stray_closers = 0
        ends = [(self.value_end[stop], stop) for stop in self.splits if stop > first]
        for end, stop in [*ends, (self.final_end, None)]:
            while tag is not None and tag[0] < end:
                if tag[1] > 0:
                    depth += 1
                elif depth:
                    depth -= 1
                else:
                    stray_closers += 1
                tag = next(tags, None)
            counts[stop] = depth + stray_closers
        self.unpaired[first] = counts
        return counts

    def _misfit(self, first: int, stop: int | None) -> int:
        """2 when the value from tag `first` to tag `stop` (or to the end) cannot be its enum or scalar type."""
        field = self.fields.get(self.names[first])
        if not isinstance(field, dict):
            return 0
        types, choices = _types(field), field.get("enum")
        if not isinstance(choices, list) and (not types & {"integer", "number", "boolean"} or "string" in types):
            return 0
        start, end = self.openers[first].end(), len(self.body) if stop is None else self.value_end[stop]
        if end - start > 200:  # no enum member or number is that long
            return 2
        value = _strip_one_newline(_PARAM_CLOSE_AT_END.sub("", self.body[start:end]))
        if isinstance(choices, list):
            return 0 if value in [str(choice) for choice in choices] else 2
        return 2 if isinstance(_convert(value, field, raw_text=True), str) else 0


def _closer_before(body: str, pos: int) -> int | None:
    """Start of the `</parameter>` that only blank space separates from `pos`, if any."""
    end = pos
    while end > 0 and body[end - 1].isspace():
        end -= 1
    start = body.rfind("</parameter", max(0, end - 16), end)
    if start != -1 and (closer := _PARAM_CLOSE.match(body, start)) and closer.end() == end:
        return start
    return None


def _strip_one_newline(value: str) -> str:
    """The template writes `<parameter=P>\\nVALUE\\n</parameter>`: exactly one newline each side is syntax."""
    value = value[1:] if value.startswith("\n") else value
    return value[:-1] if value.endswith("\n") else value


# -- Hermes and other JSON calls ----------------------------------------------------------------
def _read_hermes(text: str, at: int) -> tuple[list[_Attempt], int] | None:
    """JSON call(s) after `<tool_call>`: anything unreadable here is an error, since the tag promised a call."""
    try:
        objects, pos = _json_values(text, at)
    except json.JSONDecodeError as exc:
        return _read_python_call(text, at, exc)
    close = _HERMES_CLOSE.match(text, pos)
    if close is None and not _cut_off_here(text, pos):
        return None  # `I would do <tool_call>{...} but only after asking`: prose, reported as not run
    return [_hermes_attempt(obj) for obj in objects], close.end() if close else pos


def _call_ends_its_wrapper(text: str, end: int) -> bool:
    """Whether an XML call read up to `end` closed its `<tool_call>`, stopped where the reply was cut, or is
    followed by the next `<function=` of the same wrapper; text after an unclosed wrapper makes it prose."""
    rest = text[end:end + 1_000].lstrip()
    return text[:end].rstrip().endswith("</tool_call>") or _cut_off_here(text, end) or rest.startswith("<function")


def _cut_off_here(text: str, pos: int) -> bool:
    """Only blanks (or a stray `}`/`]`/fence) after a call whose closing tag is missing: the reply stopped
    where the closer would be. Anything more is prose: vLLM's `hermes` parser reads an unclosed
    `<tool_call>` to the end of the reply, where the JSON then fails to parse, so it runs nothing."""
    return not text[pos:].strip().strip("}]`").strip()


def _json_values(text: str, at: int) -> tuple[list[Any], int]:
    """Consecutive JSON values from `at` (a list counts as its items); raises JSONDecodeError."""
    objects: list[Any] = []
    pos = at
    while pos < len(text) and text[pos] in "{[":
        value, pos = _decode_json(text, pos)
        objects += value if isinstance(value, list) else [value]
        pos = _skip_space(text, pos)
    return objects, pos


def _decode_json(text: str, pos: int) -> tuple[Any, int]:
    """One JSON value at `pos`. Tried on a window first: a failed decode of the whole reply costs time in
    proportion to all the text before it (the error counts its lines), which lines of JSON-like text repeat."""
    window = text[pos:pos + _JSON_WINDOW]
    try:
        value, end = _JSON.raw_decode(window)
        return value, pos + end
    except json.JSONDecodeError as exc:
        if len(window) < _JSON_WINDOW or not (exc.pos >= len(window) - 1 or exc.msg.startswith("Unterminated")):
            raise
    return _JSON.raw_decode(text, pos)


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


def _read_json_calls(text: str, at: int, fmt: Format, schemas: Schemas,
                     close_tag: str = "") -> tuple[list[_Attempt], int] | None:
    """JSON call(s) written bare, or in one of llama.cpp's other wrapper tags; None when it is just JSON."""
    if not _JSON_CALL_START.match(text, at):
        return None
    try:
        objects, end = _json_values(text, at)
    except json.JSONDecodeError as exc:
        line_end = _line_end(text, at)  # a Python literal on one line: {'name': 'bash', ...}
        value = _python_literal(text[at:line_end].strip())
        if value is _UNREADABLE:
            return _broken_call(text, at, None, exc, fmt, schemas, close_tag)
        objects, end = (value if isinstance(value, list) else [value]), line_end
    if not any(_call_shaped(obj, schemas) for obj in objects):
        return None
    if not close_tag and not all(_call_shaped(obj, schemas) for obj in objects):
        return None  # bare JSON that holds more than the call(s): an example with its reply, reported as not run
    if close_tag and (close := re.compile(r"\s*" + re.escape(close_tag)).match(text, end)):
        end = close.end()
    elif (close_tag or _after_call_tag(text, at)) and not _cut_off_here(text, end):
        return None  # a wrapper never closed, with text after the JSON: prose, as after `<tool_call>`
    return _checked_format([_hermes_attempt(obj) for obj in objects], end, "hermes", fmt)


def _read_fence(text: str, body_start: int, fmt: Format, schemas: Schemas) -> tuple[list[_Attempt], int] | None:
    """A code fence holding only JSON call(s), as llama.cpp accepts (```json, ```xml or plain ```)."""
    close = _FENCE_CLOSE.search(text, body_start + 1)
    body_end, end = (close.start(), close.end()) if close else (len(text), len(text))
    at = _skip_space(text, body_start)
    if at >= body_end or not _JSON_CALL_START.match(text, at):
        return None
    content = text[at:body_end].rstrip()
    try:
        objects, stop = _json_values(content, 0)
        if stop < len(content):
            return None  # the block shows a call among other text: an example, reported as not run
    except json.JSONDecodeError as exc:
        value = _python_literal(content)
        if value is _UNREADABLE:
            return _broken_call(text, at, end, exc, fmt, schemas)
        objects = value if isinstance(value, list) else [value]
    if not all(_call_shaped(obj, schemas) for obj in objects):
        return None  # a block that holds more than the call(s) (a request and its reply): prose, reported as not run
    return _checked_format([_hermes_attempt(obj) for obj in objects], end, "hermes", fmt)


def _call_shaped(obj: Any, schemas: Schemas) -> bool:
    """A JSON value that can only be a call: call keys only, and an offered tool's name or arguments."""
    if not isinstance(obj, dict):
        return False
    if isinstance(obj.get("function"), dict):
        if not set(obj) <= _OPENAI_KEYS:
            return False
        obj = obj["function"]
    if not isinstance(obj.get("name"), str) or not set(obj) <= _CALL_KEYS:
        return False
    return not schemas or obj["name"].strip() in schemas or len(obj) > 1


def _broken_call(text: str, at: int, end: int | None, error: json.JSONDecodeError, fmt: Format,
                 schemas: Schemas, close_tag: str = "") -> tuple[list[_Attempt], int] | None:
    """Invalid JSON that names an offered tool is a broken call, reported with the syntax; else it is text.

    The call ends at `end`, else at `close_tag`, else at the end of its paragraph; over that span a
    Python literal is still accepted (a trailing comma, single quotes, True/None across lines).
    """
    named = _JSON_CALL_NAME.search(text, at, at + 300 if end is None else min(end, at + 300))
    if named is None or (schemas and named.group(1).strip() not in schemas):
        return None
    if end is None:
        stop = text.find(close_tag, at) if close_tag else -1
        body_end = stop if stop != -1 else _paragraph_end(text, at)
        end = stop + len(close_tag) if stop != -1 else body_end
        value = _python_literal(text[at:body_end].strip())
        objects = value if isinstance(value, list) else [value]
        if value is not _UNREADABLE and any(_call_shaped(obj, schemas) for obj in objects):
            return _checked_format([_hermes_attempt(obj) for obj in objects], end, "hermes", fmt)
    problem = (f"this looks like a call to {named.group(1).strip()} written as JSON, but the JSON is invalid "
               f"({error.msg} at line {error.lineno} column {error.colno}), so it was not run. {_syntax_hint(fmt)}")
    return [_Attempt(name=named.group(1).strip(), problem=problem)], end


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


# -- where in the text ---------------------------------------------------------------------
def _at_line_start(text: str, pos: int) -> bool:
    while pos > 0 and text[pos - 1] in " \t":
        pos -= 1
    return pos == 0 or text[pos - 1] == "\n"


def _after_call_tag(text: str, pos: int) -> bool:
    """Whether only blanks separate `pos` from a wrapper tag before it (`<tool_call>`, `<tool>`...)."""
    return _OPEN_TAG_BEFORE.search(text, max(0, pos - 1_000), pos) is not None


def _skip_blanks(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _in_list_item(text: str, pos: int) -> bool:
    """Whether the line at `pos` is indented under a Markdown list item (`1. Clean the build:` and the JSON
    indented below it): what stands there belongs to the item, an explanation, never a call."""
    line_start = text.rfind("\n", 0, pos) + 1
    indent = len(text[line_start:pos].expandtabs(4))
    if not indent:
        return False
    for _ in range(_MAX_LIST_LOOKBACK):  # back over the item's other lines to the first one indented less
        if line_start == 0:
            return False
        line_start = text.rfind("\n", 0, line_start - 1) + 1
        line = text[line_start:_line_end(text, line_start)]
        if line.strip() and len(line) - len(line.lstrip(" \t")) < indent:
            return _LIST_ITEM.match(line) is not None
    return False


def _in_inline_code(text: str, pos: int) -> bool:
    """Inside `backticks` on its line: a tag the model is talking about, not writing."""
    return text.count("`", text.rfind("\n", 0, pos) + 1, pos) % 2 == 1


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end == -1 else end


def _paragraph_end(text: str, pos: int) -> int:
    end = text.find("\n\n", pos)
    return len(text) if end == -1 else end


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
        owner = _command_owner(attempt.name, schemas)
        if owner is None:
            return f"Tool call {number}: there is no tool named {attempt.name!r}. Available tools: {', '.join(schemas)}."
        # `str_replace` for str_replace_editor's command of that name, as small models write it
        attempt = replace(attempt, name=owner, arguments={**attempt.arguments, "command": attempt.name})
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


def _command_owner(name: str, schemas: dict[str, dict[str, Any]]) -> str | None:
    """The one tool that takes `name` as its `command` (str_replace_editor for `view`, `str_replace`...), or None.

    Models trained on the Anthropic-style editor (Qwen2.5-Coder among them) often call its
    commands by name; the call is the same one with the tool's name and `command` filled in.
    The history then shows the call in its proper form, which the model copies from there on.
    """
    owners = [tool for tool, schema in schemas.items()
              if name in (((schema.get("properties") or {}).get("command") or {}).get("enum") or ())]
    return owners[0] if len(owners) == 1 else None


def _convert(value: Any, schema: Any, raw_text: bool) -> Any:
    """`value` as the schema's type, as vLLM's and SGLang's Qwen3-Coder parsers convert it.

    Text that does not read as the declared type is kept as the model wrote it (vLLM turns a bad
    boolean into false; we keep the text, and the tool's own argument check says what is wrong).
    A single value for an array parameter becomes a one-element list. Raises ValueError('must be
    ..., got ...') only for a JSON value of another kind (a list for an integer).
    """
    if isinstance(value, float) and not math.isfinite(value):  # a Python literal such as 1e400
        value = repr(value)
    if not isinstance(schema, dict):  # a parameter the tool does not declare: the tool decides
        return value
    types = _types(schema)
    if not types:  # no usable type: JSON if it reads as JSON, else the text
        if raw_text and isinstance(value, str):
            parsed = _literal(value.strip(), python=False)
            return value if parsed is _UNREADABLE else parsed
        return value
    if raw_text and "null" in types and isinstance(value, str) and value.strip().lower() in ("null", "none"):
        return None  # vLLM's and SGLang's Qwen3-Coder parsers read `null` as None before any type, strings too
    if _has_type(value, types):
        return value
    if isinstance(value, str):
        return _from_text(value, types, schema)
    if "integer" in types and isinstance(value, float) and value.is_integer():
        return int(value)
    if "array" in types and isinstance(value, (int, float, bool)):
        return [_convert(value, schema.get("items"), raw_text)]
    raise ValueError(f"must be {_type_words(types)}, got {_preview(value, 60)}")


def _from_text(text: str, types: set[str], schema: dict[str, Any]) -> Any:
    """Text converted to the first declared type it reads as; else the text itself, never dropped."""
    stripped = text.strip()
    lowered = stripped.lower()
    if "null" in types and lowered in ("null", "none"):
        return None
    if "boolean" in types and lowered in ("true", "false"):
        return lowered == "true"
    number = _number(stripped) if "integer" in types or "number" in types else None
    if number is not None and ("number" in types or float(number).is_integer()):
        return number if "number" in types else int(number)
    if "array" in types or "object" in types:
        parsed = _literal(stripped)  # JSON, else a Python literal: ['a', 'b'], {'k': True}, (1, 2)
        if "array" in types and isinstance(parsed, (list, tuple)):
            return list(parsed)
        if "object" in types and isinstance(parsed, dict):
            return parsed
        if "array" in types and not stripped.startswith("["):  # one item given bare: `src/a.py`, `5`
            return [_convert(text, schema.get("items"), raw_text=True)]
    return text


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None  # `NaN`, `inf`, `1e400` stay text


def _types(schema: dict[str, Any]) -> set[str]:
    declared = schema.get("type")
    names = [declared] if isinstance(declared, str) else list(declared) if isinstance(declared, list) else []
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key) or []:
            if isinstance(option, dict):
                names += _types(option)
    if schema.get("nullable") is True:  # OpenAPI 3.0's way of allowing null
        names.append("null")
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
    """A Python literal, but not one that glues adjacent strings: `"ls" "-l"` is broken JSON, not `"ls-l"`."""
    try:
        value = ast.literal_eval(text)
        kinds = [token.type for token in tokenize.generate_tokens(io.StringIO(text).readline)
                 if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT)]
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, tokenize.TokenError):
        return _UNREADABLE
    if any(a == b == tokenize.STRING for a, b in zip(kinds, kinds[1:])):
        return _UNREADABLE
    return value


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
