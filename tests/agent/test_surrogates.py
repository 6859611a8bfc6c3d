"""Requests are made sendable walking only what changed since the last one, with the output of a whole walk."""

from __future__ import annotations

import json
import random
import threading
from typing import Any

import pytest

from agent import surrogates
from agent.surrogates import SurrogateFree, without_surrogates

TOOLS = [{"type": "function", "function": {"name": "bash", "description": "Run a command",
                                           "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                                                          "required": ["command"]}}}]


def body(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = TOOLS) -> dict[str, Any]:
    request: dict[str, Any] = {"model": "qwen", "messages": messages, "max_tokens": 1024, "temperature": 0.7,
                               "chat_template_kwargs": {"enable_thinking": False}}
    return request | ({"tools": tools} if tools else {})


def step(n: int, text: str = "") -> list[dict[str, Any]]:
    """One loop step's messages: the assistant's call and the tool's observation."""
    call = {"id": f"c{n}", "type": "function", "function": {"name": "bash", "arguments": json.dumps({"command": "ls"})}}
    return [{"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{n}", "content": f"out {n} {text}"}]


def same_as_a_whole_walk(free: SurrogateFree, request: dict[str, Any]) -> dict[str, Any]:
    """`free(request)`, checked against `without_surrogates` as data and as the JSON the server receives."""
    expected = without_surrogates(request)
    sent = free(request)
    assert sent == expected
    assert json.dumps(sent, ensure_ascii=False) == json.dumps(expected, ensure_ascii=False)
    json.dumps(sent, ensure_ascii=False).encode("utf-8")  # what `surrogates not allowed` used to fail
    return sent


def test_each_request_is_what_a_whole_walk_gives_through_appends_compaction_and_changes_in_place() -> None:
    free = SurrogateFree()
    messages = [{"role": "system", "content": "You fix bugs."}, {"role": "user", "content": "Caf\udce9 crashes"}]
    assert same_as_a_whole_walk(free, body(messages))["messages"][1]["content"] == "Caf\\xe9 crashes"
    for n in range(6):
        messages += step(n, "\udcff" if n == 2 else "")
        same_as_a_whole_walk(free, body(messages))
    # Compaction: the head, a summary, the tail; the kept messages move to other indexes.
    messages = messages[:2] + [{"role": "user", "content": "Summary: caf\udce9"}] + messages[-4:]
    same_as_a_whole_walk(free, body(messages))
    messages += step(7)
    same_as_a_whole_walk(free, body(messages))
    # A message sent before and changed in place: its content, a nested call's arguments, a new surrogate.
    messages[4]["content"] = "changed"
    messages[3]["tool_calls"][0]["function"]["arguments"] = json.dumps({"command": "cat \udce9"})
    messages[6]["content"] += " \udc80"
    assert same_as_a_whole_walk(free, body(messages))["messages"][6]["content"].endswith(" \\x80")
    # Tools dropped (text tool calls), a value equal to the old one but of another JSON type, a shorter list.
    messages[8]["content"] = 1
    same_as_a_whole_walk(free, body(messages, tools=None))
    messages[8]["content"] = True  # == 1, but JSON `true`
    same_as_a_whole_walk(free, body(messages))
    same_as_a_whole_walk(free, body(messages[:2]))


def test_random_conversations_interleaved_on_one_client_match_a_whole_walk() -> None:
    """Appends, compactions, edits in place, surrogates anywhere, and two conversations taking turns."""
    rng = random.Random(7)
    texts = ["plain", "caf\udce9", "\ud800 lone high", "path \\xe9", "ünïcode", "\udcff\udcfe", ""]
    free = SurrogateFree()
    conversations = [[{"role": "system", "content": "s"}, {"role": "user", "content": rng.choice(texts)}]
                     for _ in range(2)]
    for turn in range(300):
        messages = conversations[rng.randrange(2)]
        action = rng.random()
        if action < 0.6:
            messages += step(turn, rng.choice(texts))
        elif action < 0.7 and len(messages) > 6:
            messages[2:-3] = [{"role": "user", "content": f"summary {rng.choice(texts)}"}]
        elif action < 0.9:
            message = rng.choice(messages)
            message["content"] = rng.choice([rng.choice(texts), None, 0, False])
        else:
            rng.choice([m for m in messages if "tool_calls" in m] or messages).setdefault("tool_calls", [{}])[0][
                "function"] = {"name": "bash", "arguments": json.dumps({"command": rng.choice(texts)})}
        same_as_a_whole_walk(free, body(messages, tools=TOOLS if rng.random() < 0.8 else None))


def test_a_request_walks_only_the_messages_added_since_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole conversation was walked at every step: quadratic in the run's length."""
    walked: list[str] = []
    monkeypatch.setattr(surrogates, "visible", lambda text: walked.append(text) or text)
    free = SurrogateFree()
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "task"}]
    for n in range(20):
        messages += step(n)
        walked.clear()
        free(body(messages))
    assert sorted(walked) == sorted(["qwen", *strings(step(19))])  # the model's name is not a list item


def test_each_thread_keeps_its_own_conversation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch's workers share one client: one conversation's requests must not undo another's reuse."""
    free = SurrogateFree()
    counted = threading.local()
    monkeypatch.setattr(surrogates, "visible", lambda text: setattr(counted, "n", counted.n + 1) or text)
    in_step = threading.Barrier(2)  # the two conversations take turns step by step
    walked: dict[str, list[int]] = {}
    wrong: list[str] = []  # conversations sent something a whole walk would not have

    def converse(name: str) -> None:
        messages = [{"role": "system", "content": "s"}, {"role": "user", "content": name}]
        for n in range(10):
            messages += step(n, name)
            in_step.wait()
            counted.n = 0
            sent = free(body(messages))
            walked.setdefault(name, []).append(counted.n)
            wrong.extend([name] if sent != without_surrogates(body(messages)) else [])

    threads = [threading.Thread(target=converse, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_step = 1 + len(strings(step(0)))  # the model's name and the step's new strings
    assert walked["first"][1:] == walked["second"][1:] == [per_step] * 9, walked
    assert wrong == []
    assert walked["first"][0] > per_step  # the first request is walked whole


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []
