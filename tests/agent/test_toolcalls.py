"""Tool-call parsing: native, Hermes and Qwen3-Coder XML replies, including the malformed ones.

Many cases are ported from the public test suites of vLLM (`test_qwen3coder_tool_parser.py`,
`test_hermes_tool_parser.py`), SGLang (`test_function_call_parser.py`) and from raw outputs
users reported in issue threads (dropped `<tool_call>` openers, dropped `</parameter>`,
`&&` and `<` in values, drifting closers).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.toolcalls import ToolCall, parse_reply, render_assistant_text, render_tool_instructions


def function_tool(name: str, properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required is not None:
        parameters["required"] = required
    function = {"name": name, "description": f"The {name} tool.", "parameters": parameters}
    return {"type": "function", "function": function}


WEATHER = function_tool("get_current_weather", {
    "city": {"type": "string", "description": "The city name"},
    "state": {"type": "string", "description": "The state code"},
    "unit": {"type": "string", "enum": ["fahrenheit", "celsius"]},
}, ["city", "state"])
AREA = function_tool("calculate_area", {
    "shape": {"type": "string"}, "dimensions": {"type": "object"}, "precision": {"type": "integer"},
})
BASH = function_tool("bash", {"command": {"type": "string"}, "timeout": {"type": "integer"}}, ["command"])
EDITOR = function_tool("str_replace_editor", {
    "command": {"type": "string", "enum": ["view", "create", "str_replace"]},
    "path": {"type": "string"},
    "view_range": {"type": "array", "items": {"type": "integer"}},
    "file_text": {"type": "string"},
}, ["command", "path"])
SUBMIT = function_tool("submit", {})
TYPES = function_tool("test_types", {
    "int_param": {"type": "integer"},
    "float_param": {"type": "number"},
    "bool_param": {"type": "boolean"},
    "str_param": {"type": "string"},
    "obj_param": {"type": "object"},
    "list_param": {"type": "array"},
    "nullable": {"type": ["integer", "null"]},
    "either": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
    "untyped": {"description": "no type given"},
    "odd_type": {"type": "datetime"},
})
TOOLS = [WEATHER, AREA, BASH, EDITOR, SUBMIT, TYPES]


def xml_call(name: str, **params: str) -> str:
    """One call laid out exactly as the Qwen3-Coder chat template writes it."""
    body = "".join(f"<parameter={key}>\n{value}\n</parameter>\n" for key, value in params.items())
    return f"<tool_call>\n<function={name}>\n{body}</function>\n</tool_call>"


def only_call(reply: str, tools: list[dict[str, Any]] = TOOLS, **kwargs: Any) -> ToolCall:
    parsed = parse_reply(reply, tools, **kwargs)
    assert parsed.errors == []
    assert len(parsed.calls) == 1
    return parsed.calls[0]


# -- thinking -------------------------------------------------------------------------------
def test_think_block_becomes_reasoning_and_leaves_content() -> None:
    parsed = parse_reply("<think>\nThe test fails on None.\n</think>\n\nLet me look.\n"
                         + xml_call("bash", command="ls"), TOOLS)

    assert parsed.reasoning == "The test fails on None."
    assert parsed.content == "Let me look."
    assert [c.name for c in parsed.calls] == ["bash"]


def test_closing_think_without_opener_makes_everything_before_it_reasoning() -> None:
    # Qwen3 templates put `<think>` in the prompt, so the reply starts inside the thought.
    parsed = parse_reply('I should list files.\n</think>\n\n<tool_call>\n{"name": "bash", "arguments": '
                         '{"command": "ls"}}\n</tool_call>', TOOLS)

    assert parsed.reasoning == "I should list files."
    assert parsed.content == ""
    assert parsed.calls == [ToolCall("bash", {"command": "ls"})]


def test_reasoning_field_and_think_block_are_both_kept() -> None:
    parsed = parse_reply("<think>second</think>done", TOOLS, reasoning="first")

    assert parsed.reasoning == "first\n\nsecond"
    assert parsed.content == "done"


def test_unclosed_think_is_all_reasoning_and_not_an_error() -> None:
    parsed = parse_reply("<think>I will call <tool_call> soon but the reply ends here", TOOLS)

    assert parsed.reasoning == "I will call <tool_call> soon but the reply ends here"
    assert (parsed.calls, parsed.content, parsed.errors) == ([], "", [])


def test_call_inside_think_is_not_run_and_the_model_is_told_why() -> None:
    parsed = parse_reply('<think>Maybe <tool_call>\n{"name": "bash", "arguments": {"command": "rm -r build"}}\n'
                         "</tool_call> but first I should look.</think>Let me think again.", TOOLS)

    assert parsed.calls == []
    assert parsed.errors == ["Your tool call (bash) was written inside your reasoning (<think>...</think>), so it was "
                             "not run: calls are only read from the answer after </think>. Write the call again after "
                             "</think>."]
    assert parsed.content == "Let me think again."


def test_call_before_a_closing_think_whose_opener_was_in_the_prompt_is_reasoning_too() -> None:
    parsed = parse_reply("I will list.\n" + xml_call("bash", command="ls") + "\n</think>\n\nDone thinking.", TOOLS)

    assert parsed.calls == [] and "inside your reasoning" in parsed.errors[0]
    assert parsed.content == "Done thinking."


def test_call_in_the_servers_reasoning_field_is_reported_the_same_way() -> None:
    parsed = parse_reply("", TOOLS, reasoning=xml_call("str_replace_editor", command="view", path="a.py"))

    assert parsed.calls == [] and "(str_replace_editor) was written inside your reasoning" in parsed.errors[0]


def test_draft_call_in_thinking_is_silent_when_the_answer_has_its_own_call() -> None:
    parsed = parse_reply("<think>" + xml_call("bash", command="ls -l") + "</think>" + xml_call("bash", command="ls"),
                         TOOLS)

    assert (parsed.calls, parsed.errors) == ([ToolCall("bash", {"command": "ls"})], [])


def test_closing_think_inside_a_parameter_value_is_left_alone() -> None:
    reply = xml_call("str_replace_editor", command="create", path="/t.py", file_text='s = "x</think>y"')

    parsed = parse_reply(reply, TOOLS)

    assert parsed.reasoning is None
    assert parsed.calls[0].arguments["file_text"] == 's = "x</think>y"'


# -- Qwen3-Coder XML ------------------------------------------------------------------------
def test_xml_single_call_as_the_template_writes_it() -> None:
    call = only_call(xml_call("get_current_weather", city="Dallas", state="TX", unit="fahrenheit"))

    assert call == ToolCall("get_current_weather", {"city": "Dallas", "state": "TX", "unit": "fahrenheit"})


def test_xml_text_before_and_after_the_call_is_content() -> None:
    parsed = parse_reply("Sure! Let me check the weather for you."
                         + xml_call("get_current_weather", city="Dallas", state="TX") + "\nThat should do.", TOOLS)

    assert parsed.content == "Sure! Let me check the weather for you.\nThat should do."
    assert len(parsed.calls) == 1


def test_xml_parallel_calls_come_back_in_order() -> None:
    reply = (xml_call("get_current_weather", city="Dallas", state="TX") + "\n"
             + xml_call("get_current_weather", city="Orlando", state="FL", unit="celsius"))

    parsed = parse_reply(reply, TOOLS)

    assert [c.arguments["city"] for c in parsed.calls] == ["Dallas", "Orlando"]
    assert parsed.calls[1].arguments["unit"] == "celsius"


def test_xml_multiline_object_and_integer_values_are_converted() -> None:
    call = only_call(xml_call("calculate_area", shape="rectangle", dimensions='{"width": 10, \n "height": 20}',
                              precision="2"))

    assert call.arguments == {"shape": "rectangle", "dimensions": {"width": 10, "height": 20}, "precision": 2}


def test_xml_missing_tool_call_opener_still_runs_and_eats_the_stray_closer() -> None:
    # Raw Qwen3-Coder output from an issue thread: prose, blank line, no `<tool_call>`, but `</tool_call>`.
    reply = ("I'll read the file first.\n\n<function=str_replace_editor>\n<parameter=command>\nview\n</parameter>\n"
             "<parameter=path>\n/path/to/the/file.md\n</parameter>\n</function>\n</tool_call>")

    parsed = parse_reply(reply, TOOLS)

    assert parsed.calls == [ToolCall("str_replace_editor", {"command": "view", "path": "/path/to/the/file.md"})]
    assert parsed.content == "I'll read the file first."


def test_xml_without_any_tool_call_tags() -> None:
    call = only_call("<function=get_current_weather>\n<parameter=city>\nDallas\n</parameter>\n"
                     "<parameter=state>\nTX\n</parameter>\n</function>")

    assert call.arguments == {"city": "Dallas", "state": "TX"}


def test_xml_dropped_parameter_closer_ends_the_value_at_the_next_parameter() -> None:
    reply = ("Let me check the weather for you:\n<tool_call>\n<function=get_current_weather>\n"
             "<parameter=city>\nDallas\n<parameter=state>\nTX\n</parameter>\n<parameter=unit>\nfahrenheit\n"
             "</parameter>\n</function>\n</tool_call>")

    parsed = parse_reply(reply, TOOLS)

    assert parsed.calls[0].arguments == {"city": "Dallas", "state": "TX", "unit": "fahrenheit"}
    assert parsed.content == "Let me check the weather for you:"


def test_xml_dropped_closer_before_function_end() -> None:
    call = only_call("<tool_call>\n<function=bash>\n<parameter=command>\npytest -x\n</function>\n</tool_call>")

    assert call.arguments == {"command": "pytest -x"}


def test_xml_compact_single_line_layout() -> None:
    call = only_call("<tool_call><function=get_current_weather><parameter=city>Beijing</parameter>"
                     "<parameter=state>BJ</parameter></function></tool_call>")

    assert call.arguments == {"city": "Beijing", "state": "BJ"}


def test_xml_call_without_parameters() -> None:
    assert only_call("<tool_call>\n<function=submit>\n</function>\n</tool_call>") == ToolCall("submit", {})


@pytest.mark.parametrize("value", [
    "Dallas->TX",
    "cd /repo && python -m pytest -x 2>&1 | tail -n 5",
    "if a < b and c > d:\n    pass",
    '<div class="row"><span>hi</span></div>',
    "<config>\n  <item key=\"a\">1</item>\n</config>",
    "def area(r: float) -> float:\n    return 3.14 * r * r",
    "html = '<parameter=x>' + body + '</parameter>'",
    'TEMPLATE = """\n</parameter> is how a value ends\n"""',
    "echo '</function>' > notes.txt",
])
def test_xml_values_with_tags_and_code_survive(value: str) -> None:
    call = only_call(xml_call("str_replace_editor", command="create", path="/x", file_text=value))

    assert call.arguments["file_text"] == value


def test_xml_strips_exactly_one_newline_on_each_side() -> None:
    call = only_call(xml_call("str_replace_editor", command="create", path="/x", file_text="\n    indented\n"))

    assert call.arguments["file_text"] == "\n    indented\n"


@pytest.mark.parametrize("closer", ["</parameter1>", "</parameter/>", "</parameter"])
def test_xml_drifted_parameter_closers_are_tolerated(closer: str) -> None:
    reply = (f"<tool_call>\n<function=get_current_weather>\n<parameter=city>\n上海\n{closer}\n"
             f"<parameter=state>\nSH\n</parameter>\n</function>\n</tool_call>")

    assert only_call(reply).arguments == {"city": "上海", "state": "SH"}


def test_xml_json_object_inside_the_function_tag_is_accepted() -> None:
    call = only_call('<tool_call>\n<function=bash>\n{"command": "ls", "timeout": 30}\n</function>\n</tool_call>')

    assert call.arguments == {"command": "ls", "timeout": 30}


def test_xml_call_inside_a_markdown_fence_runs_and_the_fence_is_dropped() -> None:
    parsed = parse_reply("Running it:\n```xml\n" + xml_call("bash", command="ls") + "\n```\n", TOOLS)

    assert parsed.calls == [ToolCall("bash", {"command": "ls"})]
    assert parsed.content == "Running it:"


# -- values that contain call syntax (issue 14 item 3) ----------------------------------------
PAGE = ("# Writing a file\n\nA call that creates a file names it like this:\n\n<parameter=path>\nnotes/example.txt\n"
        "</parameter>\n\nand then gives the text.\n")


PAGES = [
    PAGE,
    "Name it with <parameter=path>notes/example.txt</parameter> on one line.\n",
    "The call ends like this:\n<parameter=path>\nnotes/example.txt\n</parameter>",
    "Two of them:\n<parameter=path>\na.txt\n</parameter>\n<parameter=path>\nb.txt\n</parameter>\nend\n",
    "A whole call:\n<tool_call>\n<function=str_replace_editor>\n<parameter=command>\ncreate\n</parameter>\n"
    "<parameter=path>\nx.md\n</parameter>\n<parameter=file_text>\nhi\n</parameter>\n</function>\n</tool_call>\n",
]


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("order", [("command", "path", "file_text"), ("command", "file_text", "path"),
                                   ("file_text", "path", "command")])
def test_file_text_that_shows_parameter_tags_is_kept_whole(order: tuple[str, ...], page: str) -> None:
    values = {"command": "create", "path": "docs/writing.md", "file_text": page}

    call = only_call(xml_call("str_replace_editor", **{key: values[key] for key in order}))

    assert call.arguments == values


def test_file_text_that_shows_a_whole_call_is_kept_whole_and_text_after_stays_content() -> None:
    # The page shows the Qwen3-Coder syntax itself, closers and all: the call's first `</function></tool_call>`
    # is inside the value, which the dangling `</parameter></function>` after it gives away.
    page = ("Reply in this format:\n\n<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>"
            "\nvalue_1\n</parameter>\n</function>\n</tool_call>\n\nwith nothing after it.")

    parsed = parse_reply(xml_call("str_replace_editor", command="create", path="FORMAT.md", file_text=page)
                         + "\nCreated the page.", TOOLS)

    assert parsed.errors == []
    assert parsed.calls == [ToolCall("str_replace_editor", {"command": "create", "path": "FORMAT.md",
                                                            "file_text": page})]
    assert parsed.content == "Created the page."


def test_parallel_calls_after_a_value_with_call_syntax_keep_their_own_ends() -> None:
    page = "Example:\n<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>\nEnd."
    reply = (xml_call("str_replace_editor", command="create", path="a.md", file_text=page) + "\n"
             + xml_call("bash", command="cat a.md"))

    parsed = parse_reply(reply, TOOLS)

    assert [call.arguments.get("file_text", call.arguments.get("command")) for call in parsed.calls] == [
        page, "cat a.md"]


def test_value_ending_in_a_parameter_that_is_also_given_after_it_is_ambiguous() -> None:
    # `</parameter>\n<parameter=path>\nX` at the end of file_text, then the real path: either file_text holds
    # those lines, or path is "X</parameter>...". Both fit the tool, so nothing is guessed.
    text = "Close it with\n</parameter>\n<parameter=path>\nX"

    parsed = parse_reply(xml_call("str_replace_editor", command="create", file_text=text, path="real.md"), TOOLS)

    assert parsed.calls == []
    assert parsed.errors[0].startswith("Tool call 1 (str_replace_editor): its parameters cannot be told apart")


def test_undeclared_parameter_after_a_closer_is_a_parameter_of_its_own() -> None:
    # Strong structure wins over the schema: the tool then refuses `extra` itself, and `command` stays "ls".
    assert only_call(xml_call("bash", command="ls", extra="7")).arguments == {"command": "ls", "extra": "7"}


def test_dropped_closer_before_an_optional_parameter_is_forgiven() -> None:
    call = only_call("<tool_call>\n<function=bash>\n<parameter=command>\nls\n<parameter=timeout>\n5\n</parameter>\n"
                     "</function>\n</tool_call>")

    assert call.arguments == {"command": "ls", "timeout": 5}


def test_hostile_number_of_parameter_tags_is_refused_not_searched_forever() -> None:
    body = "".join(f"<parameter=p{i}>\nv\n</parameter>\n" for i in range(250))

    parsed = parse_reply(f"<tool_call>\n<function=bash>\n{body}</function>\n</tool_call>", TOOLS)

    assert parsed.calls == [] and "too many" in parsed.errors[0]


def test_many_parameter_tags_inside_one_value_are_read_quickly_as_one_value() -> None:
    inner = "\n".join("<parameter=path>\nx\n</parameter>" for _ in range(150))

    call = only_call(xml_call("str_replace_editor", command="create", path="p.md", file_text=inner))

    assert call.arguments["file_text"] == inner


# -- schema-driven value conversion ----------------------------------------------------------
def test_xml_values_are_converted_by_schema_type() -> None:
    call = only_call(xml_call("test_types", int_param="42", float_param="3.14", bool_param="True",
                              str_param="42", obj_param='{"key": "value"}', list_param="[1, 2]",
                              nullable="null", either="false"))

    assert call.arguments == {"int_param": 42, "float_param": 3.14, "bool_param": True, "str_param": "42",
                              "obj_param": {"key": "value"}, "list_param": [1, 2], "nullable": None, "either": False}


def test_xml_python_literal_object_falls_back_to_literal_eval() -> None:
    call = only_call(xml_call("test_types", obj_param="{'key': 'value', 'on': True}"))

    assert call.arguments == {"obj_param": {"key": "value", "on": True}}


def test_view_range_array_of_integers() -> None:
    call = only_call(xml_call("str_replace_editor", command="view", path="/a.py", view_range="[10, 20]"))

    assert call.arguments["view_range"] == [10, 20]


def test_unknown_types_try_json_then_keep_the_text() -> None:
    call = only_call(xml_call("test_types", untyped="5", odd_type="2026-01-15"))

    assert call.arguments == {"untyped": 5, "odd_type": "2026-01-15"}


def test_parameter_the_tool_does_not_declare_stays_text() -> None:
    assert only_call(xml_call("bash", command="ls", extra="7")).arguments == {"command": "ls", "extra": "7"}


def test_integer_written_as_float_text() -> None:
    assert only_call(xml_call("bash", command="ls", timeout="30.0")).arguments["timeout"] == 30


def test_value_that_is_not_the_declared_number_or_boolean_is_kept_as_written() -> None:
    # vLLM keeps a bad int as text and turns a bad boolean into false; we keep both as written, so the
    # tool's own argument check tells the model what is wrong, and nothing it wrote is dropped.
    reply = xml_call("test_types", int_param="2026-01-15", float_param="about 3", bool_param="yes") + "\n" \
        + xml_call("bash", command="ls")

    parsed = parse_reply(reply, TOOLS)

    assert parsed.errors == []
    assert parsed.calls == [ToolCall("test_types", {"int_param": "2026-01-15", "float_param": "about 3",
                                                    "bool_param": "yes"}),
                            ToolCall("bash", {"command": "ls"})]


def test_null_only_for_a_nullable_parameter() -> None:
    call = only_call(xml_call("test_types", nullable="null", str_param="null", int_param="None"))

    assert call.arguments == {"nullable": None, "str_param": "null", "int_param": "None"}


@pytest.mark.parametrize(("written", "value"), [
    ('["a.py", "b.py"]', ["a.py", "b.py"]),
    ("['a.py', 'b.py']", ["a.py", "b.py"]),  # Python-literal text, read with ast.literal_eval
    ("('a.py', 'b.py')", ["a.py", "b.py"]),
    ("src/a.py", ["src/a.py"]),  # issue 17 item 9: one string for an array is wrapped
    ("[unclosed", "[unclosed"),  # a broken list is kept as written, not wrapped into something else
])
def test_array_parameter_from_text(written: str, value: Any) -> None:
    tools = [function_tool("lint", {"paths": {"type": "array", "items": {"type": "string"}}}, ["paths"])]

    assert only_call(xml_call("lint", paths=written), tools).arguments == {"paths": value}


def test_single_value_for_an_array_is_wrapped_and_its_item_converted() -> None:
    tools = [function_tool("pick", {"lines": {"type": "array", "items": {"type": "integer"}},
                                    "tags": {"type": "array", "items": {"type": "string"}}})]

    assert only_call(xml_call("pick", lines="7"), tools).arguments == {"lines": [7]}
    hermes = '<tool_call>{"name": "pick", "arguments": {"lines": 7, "tags": "urgent"}}</tool_call>'
    assert only_call(hermes, tools).arguments == {"lines": [7], "tags": ["urgent"]}
    native_call = {"id": "c1", "type": "function", "function": {"name": "pick", "arguments": '{"tags": "urgent"}'}}
    assert parse_reply(None, tools, native_calls=[native_call]).calls == [ToolCall("pick", {"tags": ["urgent"]}, "c1")]


def test_object_parameter_from_json_or_python_literal_text_and_kept_when_neither() -> None:
    call = only_call(xml_call("calculate_area", dimensions="{'width': 2, 'round': True, 'unit': None}"))
    assert call.arguments == {"dimensions": {"width": 2, "round": True, "unit": None}}

    assert only_call(xml_call("calculate_area", dimensions="width=2")).arguments == {"dimensions": "width=2"}


def test_json_value_of_another_kind_is_an_error_and_other_calls_still_run() -> None:
    reply = '<tool_call>{"name": "test_types", "arguments": {"int_param": {"a": 1}}}</tool_call>' \
        + xml_call("bash", command="ls")

    parsed = parse_reply(reply, TOOLS)

    assert parsed.calls == [ToolCall("bash", {"command": "ls"})]
    assert parsed.errors[0].startswith("Tool call 1 (test_types): parameter 'int_param' must be an integer, got "
                                       "'{\"a\": 1}'")
    assert "int_param?: integer" in parsed.errors[0]  # the tool's parameters, to retry with


def test_without_tools_names_are_not_checked_and_values_stay_text() -> None:
    parsed = parse_reply(xml_call("anything", count="5"), [])

    assert parsed.calls == [ToolCall("anything", {"count": "5"})]


# -- errors for the model ---------------------------------------------------------------------
def test_unknown_tool_lists_the_available_ones() -> None:
    parsed = parse_reply(xml_call("run_shell", command="ls") + xml_call("bash", command="pwd"), TOOLS)

    assert [c.name for c in parsed.calls] == ["bash"]
    assert parsed.errors == ["Tool call 1: there is no tool named 'run_shell'. Available tools: get_current_weather, "
                             "calculate_area, bash, str_replace_editor, submit, test_types."]


def test_missing_required_parameters_are_named_with_the_signature() -> None:
    parsed = parse_reply(xml_call("str_replace_editor", command="view"), TOOLS)

    assert parsed.calls == []
    assert parsed.errors == ["Tool call 1 (str_replace_editor): missing required parameter path. str_replace_editor "
                             "takes: command: string, path: string, view_range?: array of integer, file_text?: string."]


def test_truncated_xml_call_is_reported_and_earlier_calls_still_run() -> None:
    reply = xml_call("bash", command="ls") + "\n<tool_call>\n<function=str_replace_editor>\n<parameter=command>\n" \
        "create\n</parameter>\n<parameter=file_text>\ndef f() -> int:\n    return"

    parsed = parse_reply(reply, TOOLS)

    assert parsed.calls == [ToolCall("bash", {"command": "ls"})]
    assert len(parsed.errors) == 1
    assert parsed.errors[0].startswith("Tool call 2 (str_replace_editor): the reply was cut off")
    assert "not run" in parsed.errors[0]


def test_lone_tool_call_tag_at_the_end_is_a_cut_off_call() -> None:
    parsed = parse_reply("Now I will run the tests.\n<tool_call>\n", TOOLS)

    assert parsed.calls == []
    assert "cut off" in parsed.errors[0]
    assert parsed.content == "Now I will run the tests."


def test_malformed_function_tag_shows_the_expected_syntax() -> None:
    parsed = parse_reply("<tool_call>\n<function=bash\n<parameter=command>\nls\n</parameter>\n</function>\n"
                         "</tool_call>", TOOLS, fmt="xml")

    assert parsed.calls == []
    assert "malformed" in parsed.errors[0]
    assert "<function=TOOL_NAME>\n<parameter=PARAMETER>\nVALUE\n</parameter>" in parsed.errors[0]


def test_parameter_tag_without_a_name_is_an_error() -> None:
    parsed = parse_reply("<tool_call>\n<function=bash>\n<parameter=>\nls\n</parameter>\n</function>\n</tool_call>",
                         TOOLS)

    assert parsed.calls == []
    assert "has no name" in parsed.errors[0]


def test_unreadable_call_body_is_an_error() -> None:
    parsed = parse_reply("<tool_call>\nbash: ls -la\n</tool_call>", TOOLS)

    assert parsed.calls == []
    assert parsed.errors[0].startswith("Tool call 1: could not read the call 'bash: ls -la")


def test_plain_reply_has_no_calls_and_no_errors() -> None:
    parsed = parse_reply("The fix is done; nothing left to run.", TOOLS)

    assert (parsed.calls, parsed.errors, parsed.content) == ([], [], "The fix is done; nothing left to run.")


# -- Hermes -----------------------------------------------------------------------------------
def test_hermes_single_call_with_text_around_it() -> None:
    parsed = parse_reply('Checking.\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls", "timeout": 10}}\n'
                         "</tool_call>\nDone.", TOOLS)

    assert parsed.calls == [ToolCall("bash", {"command": "ls", "timeout": 10})]
    assert parsed.content == "Checking.\n\nDone."


def test_hermes_several_calls_in_order_including_two_in_one_block() -> None:
    reply = ('<tool_call>\n{"name": "bash", "arguments": {"command": "one"}}\n</tool_call>\n'
             '<tool_call>\n{"name": "bash", "arguments": {"command": "two"}}\n'
             '{"name": "bash", "arguments": {"command": "three"}}\n</tool_call>')

    assert [c.arguments["command"] for c in parse_reply(reply, TOOLS).calls] == ["one", "two", "three"]


def test_hermes_arguments_given_as_a_json_string() -> None:
    call = only_call('<tool_call>{"name": "bash", "arguments": "{\\"command\\": \\"ls\\", \\"timeout\\": \\"5\\"}"}'
                     "</tool_call>")

    assert call.arguments == {"command": "ls", "timeout": 5}


def test_hermes_python_style_literal() -> None:
    call = only_call("<tool_call>\n{'name': 'test_types', 'arguments': {'bool_param': True, 'nullable': None}}\n"
                     "</tool_call>")

    assert call.arguments == {"bool_param": True, "nullable": None}


def test_hermes_raw_newlines_in_strings_and_closing_tag_inside_a_value() -> None:
    reply = ('<tool_call>\n{"name": "str_replace_editor", "arguments": {"command": "create", "path": "/p.md", '
             '"file_text": "line one\nuse </tool_call> to close"}}\n</tool_call>')

    assert only_call(reply).arguments["file_text"] == "line one\nuse </tool_call> to close"


def test_hermes_after_chinese_reasoning_with_trailing_whitespace() -> None:
    # vLLM's hermes test: a long thought ending in `</think>`, then the call and stray whitespace.
    reply = ("好的，用户现在要研发一个5MW的燃气轮机。\n</think>\n\n<tool_call>\n"
             '{"name": "internet_search", "arguments": {"question": "5MW燃气轮机设计参数 空气流量"}}'
             "\n</tool_call>\n\n ")

    parsed = parse_reply(reply, [function_tool("internet_search", {"question": {"type": "string"}})])

    assert parsed.calls == [ToolCall("internet_search", {"question": "5MW燃气轮机设计参数 空气流量"})]
    assert parsed.reasoning == "好的，用户现在要研发一个5MW的燃气轮机。"
    assert parsed.content == ""


def test_hermes_missing_closer_with_complete_json_still_runs() -> None:
    call = only_call('<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}')

    assert call == ToolCall("bash", {"command": "ls"})


def test_hermes_stray_extra_brace_is_tolerated() -> None:
    assert only_call('<tool_call>{"name": "bash", "arguments": {"command": "ls"}}}</tool_call>').name == "bash"


def test_hermes_parameters_key_and_openai_shape_are_accepted() -> None:
    reply = ('<tool_call>{"name": "bash", "parameters": {"command": "a"}}</tool_call>'
             '<tool_call>{"type": "function", "function": {"name": "bash", "arguments": {"command": "b"}}}</tool_call>')

    assert [c.arguments for c in parse_reply(reply, TOOLS).calls] == [{"command": "a"}, {"command": "b"}]


def test_hermes_invalid_json_is_explained_and_valid_calls_still_run() -> None:
    reply = ('<tool_call>\n{"name": "bash", "arguments": {"command": "ls" "timeout": 5}}\n</tool_call>\n'
             '<tool_call>\n{"name": "bash", "arguments": {"command": "pwd"}}\n</tool_call>')

    parsed = parse_reply(reply, TOOLS)

    assert parsed.calls == [ToolCall("bash", {"command": "pwd"})]
    assert parsed.errors[0].startswith("Tool call 1: the JSON inside <tool_call> is invalid (Expecting ',' delimiter")
    assert '{"name": "TOOL_NAME", "arguments": {"PARAMETER": "VALUE"}}' in parsed.errors[0]


def test_hermes_adjacent_strings_are_invalid_json_not_glued_as_python_would() -> None:
    parsed = parse_reply('<tool_call>\n{"name": "bash", "arguments": {"command": "ls" "-l"}}\n</tool_call>', TOOLS)

    assert parsed.calls == [] and "the JSON inside <tool_call> is invalid" in parsed.errors[0]


def test_hermes_truncated_json_is_a_cut_off_call() -> None:
    parsed = parse_reply('<tool_call>\n{"name": "str_replace_editor", "arguments": {"command": "create", '
                         '"file_text": "def f():\\n    ret', TOOLS)

    assert parsed.calls == []
    assert "cut off" in parsed.errors[0] and "incomplete" in parsed.errors[0]


def test_hermes_object_without_a_name_is_an_error() -> None:
    parsed = parse_reply('<tool_call>{"arguments": {"command": "ls"}}</tool_call>', TOOLS)

    assert parsed.calls == []
    assert 'expected a JSON object with "name" and "arguments"' in parsed.errors[0]


def test_hermes_string_values_are_converted_and_wrong_types_reported() -> None:
    parsed = parse_reply('<tool_call>{"name": "str_replace_editor", "arguments": {"command": "view", "path": "/a", '
                         '"view_range": "[1, 5]"}}</tool_call><tool_call>{"name": "test_types", "arguments": '
                         '{"int_param": [1]}}</tool_call>', TOOLS)

    assert parsed.calls[0].arguments["view_range"] == [1, 5]
    assert len(parsed.calls) == 1
    assert "'int_param' must be an integer, got '[1]'" in parsed.errors[0]


def test_prose_that_names_the_tags_costs_nothing() -> None:
    reply = ("Wrap each call in <tool_call> tags; the `<function=bash>` header names the tool, and a lone "
             "<tool_call> in a sentence is just a word.\n" + xml_call("bash", command="ls"))

    parsed = parse_reply(reply, TOOLS)

    assert (parsed.calls, parsed.errors) == ([ToolCall("bash", {"command": "ls"})], [])
    assert parsed.content.startswith("Wrap each call in <tool_call> tags; the `<function=bash>` header")


def test_tag_alone_on_a_line_in_prose_does_not_swallow_the_call_after_it() -> None:
    parsed = parse_reply("My calls look like\n<tool_call>\nwith a closer at the end. Here is one:\n"
                         + xml_call("bash", command="ls"), TOOLS)

    assert (parsed.calls, parsed.errors) == ([ToolCall("bash", {"command": "ls"})], [])


def test_prose_only_reply_that_mentions_tags_is_no_call_and_no_error() -> None:
    parsed = parse_reply("I used <function=bash> before and <tool_call> wrappers; now I am done.", TOOLS)

    assert (parsed.calls, parsed.errors) == ([], [])


# -- other Hermes wrappers and bare JSON (llama.cpp common/chat.cpp common_chat_parse_hermes_2_pro) -------
@pytest.mark.parametrize("wrapped", [
    '<function_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</function_call>',
    '<tool>{"name": "bash", "arguments": {"command": "ls"}}</tool>',
    '<tools>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tools>',
    '<response>{"name": "bash", "arguments": {"command": "ls"}}</response>',
    '<json>{"name": "bash", "arguments": {"command": "ls"}}</json>',
    '<JSON>{"name": "bash", "arguments": {"command": "ls"}}</JSON>',
    '<xml>{"name": "bash", "arguments": {"command": "ls"}}</xml>',
    '```json\n{"name": "bash", "arguments": {"command": "ls"}}\n```',
    '```xml\n<response>\n    {"name": "bash", "arguments": {"command": "ls"}}\n</response>\n```',
    '```\n{"name": "bash", "arguments": {"command": "ls"}}\n```',
    '<function=bash>{"command": "ls"}</function>',
    '<function name="bash">{"command": "ls"}</function>',
    '<tool_call>\n```json\n{"name": "bash", "arguments": {"command": "ls"}}\n```\n</tool_call>',
])
def test_llama_cpp_hermes_wrappers_are_read(wrapped: str) -> None:
    parsed = parse_reply("Listing.\n" + wrapped + "\n", TOOLS)

    assert (parsed.calls, parsed.errors) == ([ToolCall("bash", {"command": "ls"})], [])
    assert parsed.content == "Listing."


@pytest.mark.parametrize("reply", [
    '{"name": "bash", "arguments": {"command": "ls"}}',
    'I will list the files first.\n\n{"name": "bash", "arguments": {"command": "ls"}}',
    '{\n  "name": "bash",\n  "arguments": {\n    "command": "ls"\n  }\n}',
    '{"arguments": {"command": "ls"}, "name": "bash"}',
    "{'name': 'bash', 'arguments': {'command': 'ls'}}",
    '{"type": "function", "function": {"name": "bash", "arguments": "{\\"command\\": \\"ls\\"}"}}',
    '{"name": "bash", "parameters": {"command": "ls"}}',
    '{\n  "name": "bash",\n  "arguments": {\n    "command": "ls",\n  },\n}\n\nThat lists them.',  # trailing commas
])
def test_bare_json_call_as_qwen2_5_coder_writes_it(reply: str) -> None:
    assert only_call(reply) == ToolCall("bash", {"command": "ls"})


def test_several_bare_and_fenced_json_calls_in_order_including_a_list() -> None:
    reply = ('{"name": "bash", "arguments": {"command": "one"}}\n'
             '```json\n[{"name": "bash", "arguments": {"command": "two"}}, '
             '{"name": "bash", "arguments": {"command": "three"}}]\n```\n'
             "```json\n{\"name\": \"bash\", \"arguments\": {\"command\": \"four\"}}\n"
             '{"name": "submit", "arguments": {}}\n```')

    parsed = parse_reply(reply, TOOLS)

    assert [call.arguments.get("command", call.name) for call in parsed.calls] == ["one", "two", "three", "four",
                                                                                   "submit"]
    assert (parsed.errors, parsed.content) == ([], "")


@pytest.mark.parametrize("text", [
    '```json\n{"name": "moe-agent", "version": "1.0"}\n```',  # a package.json, not a call
    '{"name": "readme"}',  # names no tool and carries no arguments
    "```python\nconfig = {'name': 'bash', 'arguments': 1}\n```",
    '{"count": 3, "name": "bash"}',
])
def test_json_that_is_not_a_call_stays_text(text: str) -> None:
    parsed = parse_reply(text, TOOLS)

    assert (parsed.calls, parsed.errors, parsed.content) == ([], [], text)


# -- when bare or fenced JSON is a call, and when it is prose (issue 14, what remains: item 2) --------------
UNCLOSED = "after an unclosed <tool_call> (or other wrapper) with text after it"
RM = '{"name": "bash", "arguments": {"command": "rm -rf build"}}'


@pytest.mark.parametrize(("reply", "where"), [
    (f"You could call {RM} to clean up.", "inside a sentence"),
    (f"You could call {RM}", "inside a sentence"),
    (f"{RM} is what I would run, but I will not.", "inside a sentence"),
    (f'The docs say "{RM}" cleans up.', "inside a sentence"),
    (f"- {RM}", "in a list item"),
    (f"Steps:\n1. Clean the build:\n   {RM}\n2. Rebuild.", "in a list item"),  # issue 14, third tester
    (f"1. Clean the build:\n\n   {RM}\n", "in a list item"),
    (f"* Clean:\n  more about it\n  {RM}", "in a list item"),
    (f"- Steps:\n  2) Clean the build:\n     {RM}", "in a list item"),  # a nested list
    (f"1. Clean the build:\n   ```json\n   {RM}\n   ```\n2. Rebuild.", "in a list item"),
    (f"If the cache is stale I would do <tool_call>{RM} but only after asking.",
     UNCLOSED),  # issue 14, third tester
    (f"I would do <tool_call>\n{RM}\nbut only after asking.", UNCLOSED),
    (f"Maybe <tool>{RM} later, once the tests pass.", UNCLOSED),
    (f"Example request and reply:\n```json\n{RM}\n{{\"output\": \"ok\", \"exit_code\": 0}}\n```",
     "inside a ```json code block that holds more"),  # issue 14, third tester
    (f"Example:\n```\n[{RM}, {{\"output\": \"ok\"}}]\n```", "inside a ``` code block that holds more"),
    (f"Example request and reply:\n{RM}\n{{\"output\": \"ok\", \"exit_code\": 0}}\n", "inside a sentence"),
    (f"Cleaning up would be:\n> {RM}\n\nI will not do it.", "in a quote"),
    (f"For example `{RM}` deletes the build.", "in `inline code`"),
    (f"For example:\n```text\n{RM}\n```", "inside a ```text code block"),
    (f"For example:\n```bash\n# {RM}\n```\nwould clean up.", "inside a ```bash code block"),
    (f"For example:\n```json\n{RM} deletes the build\n```", "inside a ```json code block that holds more"),
    (f"For example:\n```\n{RM}\n// then rebuild\n```", "inside a ``` code block that holds more"),
    (f"```python\ncall({RM})\n```", "inside a ```python code block"),
    (f"Like this:\n\n    {RM}\n\nbut not now.", "in an indented code block"),  # Markdown's 4-space code
    (f"Like this:\n\t{RM}", "in an indented code block"),
])
def test_call_shaped_json_in_prose_is_not_run_and_the_model_is_told(reply: str, where: str) -> None:
    parsed = parse_reply(reply, TOOLS)

    assert parsed.calls == []
    assert len(parsed.errors) == 1
    assert parsed.errors[0].startswith(f"The call to bash written as JSON {where}")
    assert "was NOT run" in parsed.errors[0] and "stands alone on its own lines" in parsed.errors[0]


@pytest.mark.parametrize(("reply", "where"), [
    ("You could run <function=bash><parameter=command>rm -rf build</parameter></function> to clean.",
     "inside a sentence"),
    ("> <function=bash>\n> <parameter=command>\n> rm -rf build", "in a quote"),
    ('Try `<function=bash>{"command": "rm -rf build"}</function>` later.', "in `inline code`"),
    ("I would do <tool_call><function=bash><parameter=command>rm -rf build</parameter></function> but only after "
     "asking.", UNCLOSED),  # issue 14, third tester
    ("I would do <tool_call>\n<function=bash>\n<parameter=command>\nrm -rf build\n</parameter>\n</function>\n"
     "but only after asking.", UNCLOSED),
])
def test_a_function_header_in_prose_is_not_run_and_the_model_is_told(reply: str, where: str) -> None:
    parsed = parse_reply(reply, TOOLS)

    assert parsed.calls == []
    assert parsed.errors[0].startswith(f"The call to bash written as <function=bash> {where} was NOT run")


def test_a_real_call_next_to_an_example_in_prose_runs_alone_and_the_example_is_reported() -> None:
    reply = (f"Running `{RM}` would lose the cache, so I only list it:\n"
             '{"name": "bash", "arguments": {"command": "ls build"}}\n')

    parsed = parse_reply(reply, TOOLS)

    assert parsed.calls == [ToolCall("bash", {"command": "ls build"})]
    assert len(parsed.errors) == 1 and "in `inline code` was NOT run" in parsed.errors[0]


@pytest.mark.parametrize("reply", [
    '{"name": "bash", "arguments": {"command": "ls"}}\nThat lists the files.',  # prose on the next line is fine
    'Let me look:\n   {"name": "bash", "arguments": {"command": "ls"}}  \n',  # indented less than code, trailing blanks
    '{"name": "bash", "arguments": {"command": "ls"}}</tool_call>',  # a dropped opener
    '```JSON\n{"name": "bash", "arguments": {"command": "ls"}}\n```',
    'Listing:\n```xml\n{"name": "bash", "arguments": {"command": "ls"}}\n```\nDone.',
])
def test_json_standing_alone_on_its_lines_or_filling_a_json_block_is_a_call(reply: str) -> None:
    assert only_call(reply) == ToolCall("bash", {"command": "ls"})


def test_unclosed_tool_call_runs_only_where_the_reply_was_cut() -> None:
    """vLLM's hermes parser reads an unclosed `<tool_call>` to the end of the reply: with text after the JSON
    nothing runs. A closed call after an unclosed one runs alone; the unclosed one is reported."""
    cut = parse_reply('Now:\n<tool_call>{"name": "bash", "arguments": {"command": "ls"}}}\n  ', TOOLS)
    both = parse_reply(f"<tool_call>{RM}\n<tool_call>" + '{"name": "bash", "arguments": {"command": "ls"}}</tool_call>',
                       TOOLS)

    assert (cut.calls, cut.errors) == ([ToolCall("bash", {"command": "ls"})], [])
    assert both.calls == [ToolCall("bash", {"command": "ls"})]
    assert len(both.errors) == 1 and "after an unclosed <tool_call>" in both.errors[0] and "NOT run" in both.errors[0]


def test_xml_calls_of_one_wrapper_and_a_cut_off_wrapper_still_run() -> None:
    ls, pwd = (f"<function=bash>\n<parameter=command>\n{command}\n</parameter>\n</function>"
               for command in ("ls", "pwd"))

    assert len(parse_reply(f"Both:\n<tool_call>\n{ls}\n{pwd}\n</tool_call>", TOOLS).calls) == 2
    assert only_call(f"Now:\n<tool_call>\n{ls}\n") == ToolCall("bash", {"command": "ls"})


def test_a_plan_with_unindented_calls_between_list_items_still_runs() -> None:
    """Qwen2.5-Coder writes a call on its own line after a list; only JSON indented under an item is its text."""
    reply = 'Plan:\n1. List the files.\n2. Read them.\n\n{"name": "bash", "arguments": {"command": "ls"}}'

    assert only_call(reply) == ToolCall("bash", {"command": "ls"})


def test_a_bare_call_line_inside_an_example_block_is_not_run() -> None:
    reply = f"Never do this:\n```text\nfirst\n{RM}\n```\n" + '{"name": "bash", "arguments": {"command": "ls"}}'

    parsed = parse_reply(reply, TOOLS)

    assert parsed.calls == [ToolCall("bash", {"command": "ls"})]
    assert parsed.errors[0].startswith("The call to bash written as JSON inside a ```text code block was NOT run")


def test_code_that_merely_holds_a_name_key_is_not_reported() -> None:
    for text in ("```python\nconfig = {'name': 'bash', 'arguments': 1}\n```", 'The package is {"name": "readme"}.'):
        assert parse_reply(text, TOOLS).errors == []


def test_a_native_session_never_reads_prose_json() -> None:
    native = [{"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}]

    parsed = parse_reply(f"You could call {RM}.", TOOLS, native_calls=native)

    assert parsed.calls == [ToolCall("bash", {"command": "ls"}, "c1")] and parsed.errors == []


@pytest.mark.parametrize("broken", [
    '```json\n{"name": "bash", "arguments": {"command": "ls"}\n```',
    '{"name": "bash", "arguments": {"command": "ls"',
    '<function_call>{"name": "bash", "arguments": {"command": "ls" "x"}}</function_call>',
])
def test_broken_json_call_to_an_offered_tool_shows_the_expected_syntax(broken: str) -> None:
    parsed = parse_reply(broken, TOOLS)

    assert parsed.calls == []
    assert parsed.errors[0].startswith("Tool call 1 (bash): this looks like a call to bash written as JSON, but the "
                                       "JSON is invalid")
    assert '<tool_call>\n{"name": "TOOL_NAME", "arguments": {"PARAMETER": "VALUE"}}\n</tool_call>' in parsed.errors[0]


def test_an_editor_command_called_as_a_tool_runs_as_the_editor_with_that_command() -> None:
    """Qwen2.5-Coder-1.5B against llama-server wrote `{"name": "str_replace", "arguments": {"path": ...}}`."""
    text = '```json\n{"name": "str_replace", "arguments": {"path": "calc.py", "file_text": "x"}}\n```'
    parsed = parse_reply(text, TOOLS)

    assert parsed.errors == []
    assert parsed.calls == [ToolCall("str_replace_editor", {"path": "calc.py", "file_text": "x", "command": "str_replace"})]
    native_parsed = parse_reply(None, TOOLS, native_calls=[native("view", '{"path": "a.py"}')])
    assert native_parsed.calls == [ToolCall("str_replace_editor", {"path": "a.py", "command": "view"}, "call_1")]


def test_a_command_no_tool_takes_is_still_an_unknown_tool() -> None:
    parsed = parse_reply('{"name": "undo_edit", "arguments": {"path": "a.py"}}', TOOLS)  # not in this EDITOR's enum

    assert parsed.calls == [] and parsed.errors[0].startswith("Tool call 1: there is no tool named 'undo_edit'")


def test_bare_json_call_to_an_unknown_tool_is_reported() -> None:
    parsed = parse_reply('{"name": "run_shell", "arguments": {"cmd": "ls"}}', TOOLS)

    assert parsed.calls == [] and parsed.errors[0].startswith("Tool call 1: there is no tool named 'run_shell'")


def test_bare_json_call_in_an_xml_session_is_refused_with_the_xml_syntax() -> None:
    parsed = parse_reply('{"name": "bash", "arguments": {"command": "ls"}}', TOOLS, fmt="xml")

    assert parsed.calls == [] and "written in hermes syntax but this session uses xml syntax" in parsed.errors[0]


def test_native_session_reports_a_bare_json_call_written_as_text() -> None:
    parsed = parse_reply('{"name": "bash", "arguments": {"command": "ls"}}', TOOLS, fmt="native")

    assert parsed.calls == [] and "written as text" in parsed.errors[0]


# -- formats and native calls -----------------------------------------------------------------
def test_auto_reads_hermes_and_xml_in_the_same_reply() -> None:
    reply = '<tool_call>{"name": "bash", "arguments": {"command": "a"}}</tool_call>\n' + xml_call("bash", command="b")

    assert [c.arguments["command"] for c in parse_reply(reply, TOOLS).calls] == ["a", "b"]


def test_hermes_format_rejects_xml_calls_with_the_hermes_syntax() -> None:
    parsed = parse_reply(xml_call("bash", command="ls"), TOOLS, fmt="hermes")

    assert parsed.calls == []
    assert "written in xml syntax but this session uses hermes syntax" in parsed.errors[0]
    assert '<tool_call>\n{"name": "TOOL_NAME"' in parsed.errors[0]


def test_xml_format_rejects_hermes_calls() -> None:
    parsed = parse_reply('<tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call>', TOOLS, fmt="xml")

    assert parsed.calls == []
    assert "written in hermes syntax but this session uses xml syntax" in parsed.errors[0]


def native(name: str, arguments: str | dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_auto_prefers_native_calls_and_leaves_text_alone() -> None:
    parsed = parse_reply("I'll list files. <tool_call>not parsed</tool_call>", TOOLS,
                         native_calls=[native("bash", '{"command": "ls"}', "call_9"), native("submit", "")])

    assert parsed.calls == [ToolCall("bash", {"command": "ls"}, "call_9"), ToolCall("submit", {}, "call_1")]
    assert parsed.content == "I'll list files. <tool_call>not parsed</tool_call>"
    assert parsed.errors == []


def test_native_bad_arguments_and_unknown_tool_are_errors_next_to_valid_calls() -> None:
    parsed = parse_reply(None, TOOLS, native_calls=[
        native("bash", '{"command": "ls", '), native("nope", "{}"), native("bash", {"command": "pwd"}, "c3"),
    ])

    assert parsed.calls == [ToolCall("bash", {"command": "pwd"}, "c3")]
    assert parsed.errors[0].startswith("Tool call 1 (bash): its arguments are not valid JSON")
    assert parsed.errors[1].startswith("Tool call 2: there is no tool named 'nope'")


def test_native_format_does_not_run_text_calls_but_says_so() -> None:
    parsed = parse_reply(xml_call("bash", command="ls"), TOOLS, fmt="native")

    assert parsed.calls == []
    assert "written as text" in parsed.errors[0]


def test_unknown_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown tool-call format"):
        parse_reply("", TOOLS, fmt="json")  # type: ignore[arg-type]


# -- rendering --------------------------------------------------------------------------------
def test_render_xml_matches_the_qwen3_coder_template_layout() -> None:
    text = render_assistant_text([ToolCall("str_replace_editor", {"command": "view", "view_range": [1, 9]})], "xml")

    assert text == ("<tool_call>\n<function=str_replace_editor>\n<parameter=command>\nview\n</parameter>\n"
                    "<parameter=view_range>\n[1, 9]\n</parameter>\n</function>\n</tool_call>")


def test_render_hermes_matches_the_qwen_template_layout() -> None:
    text = render_assistant_text([ToolCall("bash", {"command": "ls"}), ToolCall("submit", {})], "hermes")

    assert text == ('<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>\n'
                    '<tool_call>\n{"name": "submit", "arguments": {}}\n</tool_call>')


@pytest.mark.parametrize("fmt", ["hermes", "xml"])
def test_rendered_calls_parse_back_to_the_same_calls(fmt: str) -> None:
    calls = [
        ToolCall("str_replace_editor", {"command": "create", "path": "/src/app.py",
                                        "file_text":
                                            "\ndef main() -> None:\n    if a < b && c:\n        print('<b>')\n"}),
        ToolCall("str_replace_editor", {"command": "view", "path": "/src/app.py", "view_range": [3, 30]}),
        ToolCall("calculate_area", {"shape": "circle", "dimensions": {"radius": 1.5}, "precision": 2}),
    ]

    assert parse_reply(render_assistant_text(calls, fmt), TOOLS, fmt=fmt).calls == calls  # type: ignore[arg-type]


def test_xml_tool_instructions_follow_the_template_and_keep_enums() -> None:
    text = render_tool_instructions([EDITOR], "xml")

    assert text.startswith("You have access to the following functions:\n\n<tools>\n<function>\n"
                           "<name>str_replace_editor</name>\n<description>The str_replace_editor tool.</description>")
    assert "<parameter>\n<name>view_range</name>\n<type>array</type>\n<items>{\"type\": \"integer\"}</items>" in text
    assert '<enum>["view", "create", "str_replace"]</enum>' in text
    assert "<required>[`command`, `path`]</required>" in text
    assert "<tool_call>\n<function=example_function_name>" in text
    assert "must be nested within <tool_call></tool_call> XML tags" in text


def test_hermes_tool_instructions_list_each_tool_as_json() -> None:
    text = render_tool_instructions([BASH, SUBMIT], "hermes")

    listed = text.split("<tools>\n")[1].split("\n</tools>")[0].splitlines()
    assert [json.loads(line) for line in listed] == [BASH, SUBMIT]
    assert text.endswith('<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')


@pytest.mark.parametrize("render", [
    lambda: render_assistant_text([ToolCall("bash", {})], "native"),  # type: ignore[arg-type]
    lambda: render_tool_instructions([BASH], "auto"),  # type: ignore[arg-type]
])
def test_rendering_needs_a_text_format(render: Any) -> None:
    with pytest.raises(ValueError):
        render()


def test_a_bad_required_value_is_passed_on_not_reported_as_missing() -> None:
    tools = [function_tool("sleep", {"seconds": {"type": "integer"}}, ["seconds"])]

    parsed = parse_reply(xml_call("sleep", seconds="a while"), tools)

    assert parsed.errors == []
    assert parsed.calls == [ToolCall("sleep", {"seconds": "a while"})]


@pytest.mark.parametrize("written", ["NaN", "nan", "inf", "-Infinity", "1e400"])
def test_non_finite_number_text_is_kept_as_written(written: str) -> None:
    # float("NaN") and float("1e400") read, but no tool takes them and they are not JSON: keep the text.
    call = only_call(xml_call("test_types", float_param=written, int_param=written))

    assert call.arguments == {"float_param": written, "int_param": written}


@pytest.mark.parametrize("arguments", ['{"timeout": 1e400}', '{"timeout": NaN}', '{"timeout": -Infinity}',
                                       "{'timeout': 1e400}"])
def test_non_finite_native_argument_is_kept_as_text(arguments: str) -> None:
    tools = [function_tool("wait", {"timeout": {"type": "number"}})]

    [call] = parse_reply(None, tools, native_calls=[native("wait", arguments)]).calls

    assert isinstance(call.arguments["timeout"], str)
    json.dumps(call.arguments, allow_nan=False)  # strict JSON, as the trajectory writes it



def test_many_calls_in_prose_give_a_few_notices_and_unterminated_starts_none() -> None:
    parsed = parse_reply(f"Options: {RM}, " * 1000, TOOLS)
    assert parsed.calls == [] and len(parsed.errors) == 4
    assert parsed.errors[3] == "... and more call-shaped text in the prose that was not run either."
    unterminated = parse_reply('x {"name": "bash", "arguments": {"command": "' * 20_000, TOOLS)  # 920 KB
    assert (unterminated.calls, unterminated.errors) == ([], [])


def test_a_call_whose_value_shows_fences_does_not_shift_the_blocks_after_it() -> None:
    page = "Usage:\n```json\n" + RM + "\n"  # an unclosed fence inside a file's text
    reply = (xml_call("str_replace_editor", command="create", path="USAGE.md", file_text=page)
             + '\n{"name": "bash", "arguments": {"command": "ls"}}\n```text\n' + RM + "\n```\n")

    parsed = parse_reply(reply, TOOLS)

    assert [call.name for call in parsed.calls] == ["str_replace_editor", "bash"]
    assert parsed.calls[0].arguments["file_text"] == page
    assert parsed.errors[0].startswith("The call to bash written as JSON inside a ```text code block was NOT run")


NULLABLE_STRINGS = function_tool("note", {
    "listed": {"type": ["string", "null"]},
    "openapi": {"type": "string", "nullable": True},
    "either": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    "plain": {"type": "string"},
})


@pytest.mark.parametrize("written", ["null", "None", " NULL "])
def test_null_for_a_nullable_string_is_none_as_the_qwen3_coder_parsers_read_it(written: str) -> None:
    call = only_call(xml_call("note", listed=written, openapi=written, either=written, plain=written),
                     [NULLABLE_STRINGS])

    assert call.arguments == {"listed": None, "openapi": None, "either": None, "plain": written}
    text = only_call(xml_call("note", listed="nullish", either="none of it"), [NULLABLE_STRINGS])
    assert text.arguments == {"listed": "nullish", "either": "none of it"}
