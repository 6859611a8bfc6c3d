"""The scripted server itself: what goes over the wire must look like vLLM's."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlparse

import openai
import pytest

from tests.fakes.openai_server import (
    Drop,
    FakeOpenAIServer,
    HttpError,
    Reply,
    Step,
    context_length_error,
    invalid_arguments_reply,
    rate_limited,
    tool_call,
    unknown_tool_reply,
)


def connect(server: FakeOpenAIServer) -> http.client.HTTPConnection:
    url = urlparse(server.base_url)
    return http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)


def post(conn: http.client.HTTPConnection, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def chat(content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": content}], **extra}


def test_keep_alive_serves_many_requests_on_one_connection(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [Reply("one"), Reply("two")]
    conn = connect(fake_model_server)
    _, _, first = post(conn, chat())
    sock = conn.sock
    _, _, second = post(conn, chat())
    assert conn.sock is sock  # not reconnected
    assert [json.loads(body)["choices"][0]["message"]["content"] for body in (first, second)] == ["one", "two"]
    conn.close()


def test_models_endpoint_reports_max_model_len() -> None:
    with FakeOpenAIServer(model="Qwen/Qwen3-Coder-30B-A3B-Instruct", max_model_len=131072) as server:
        conn = connect(server)
        conn.request("GET", "/v1/models")
        listing = json.loads(conn.getresponse().read())
        conn.close()
    assert listing["object"] == "list"
    assert [(m["id"], m["max_model_len"]) for m in listing["data"]] == [("Qwen/Qwen3-Coder-30B-A3B-Instruct", 131072)]


def test_requests_are_recorded_with_every_top_level_key(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [Reply("ok")]
    client = openai.OpenAI(base_url=fake_model_server.base_url, api_key="EMPTY", max_retries=0)
    client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}], extra_body={"top_k": 20}
    )
    client.close()
    assert fake_model_server.requests == [
        {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "top_k": 20}
    ]


def test_usage_is_estimated_from_the_prompt_unless_overridden(fake_model_server: FakeOpenAIServer) -> None:
    fixed_usage = {"prompt_tokens": 7, "completion_tokens": 3}
    fake_model_server.script = [Reply("ok"), Reply("ok"), Reply("ok", usage=fixed_usage)]
    conn = connect(fake_model_server)
    short, longer, fixed = (json.loads(post(conn, chat(text))[2])["usage"] for text in ("a", "a" * 4000, "a"))
    conn.close()
    assert longer["prompt_tokens"] >= short["prompt_tokens"] + 1000
    assert short["total_tokens"] == short["prompt_tokens"] + short["completion_tokens"]
    assert fixed == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_exhausted_script_answers_500_saying_so(fake_model_server: FakeOpenAIServer) -> None:
    conn = connect(fake_model_server)
    status, _, body = post(conn, chat())
    conn.close()
    assert status == 500
    assert json.loads(body)["error"]["message"] == "fake server script exhausted: no step left for chat request #1"


def test_callable_script_reacts_to_the_request(fake_model_server: FakeOpenAIServer) -> None:
    def echo(body: dict[str, Any]) -> Step:
        return Reply(f"you said {body['messages'][-1]['content']}")

    fake_model_server.script = echo
    conn = connect(fake_model_server)
    replies = [json.loads(post(conn, chat(text))[2])["choices"][0]["message"]["content"] for text in ("a", "b")]
    conn.close()
    assert replies == ["you said a", "you said b"]


def test_callable_script_that_raises_becomes_a_loud_500(fake_model_server: FakeOpenAIServer) -> None:
    def broken(body: dict[str, Any]) -> Step:
        raise KeyError("tools")

    fake_model_server.script = broken
    conn = connect(fake_model_server)
    status, _, body = post(conn, chat())
    conn.close()
    assert status == 500 and "KeyError('tools')" in json.loads(body)["error"]["message"]


def test_rate_limit_sends_retry_after(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [rate_limited(retry_after=2)]
    conn = connect(fake_model_server)
    status, headers, body = post(conn, chat())
    conn.close()
    assert (status, headers["Retry-After"]) == (429, "2")
    assert json.loads(body)["error"]["type"] == "RateLimitError"


def test_context_length_error_has_vllm_shape_and_wording(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [context_length_error(max_model_len=4096, prompt_tokens=5000, completion_tokens=100)]
    conn = connect(fake_model_server)
    status, _, body = post(conn, chat())
    conn.close()
    assert status == 400
    assert json.loads(body) == {
        "error": {
            "message": "This model's maximum context length is 4096 tokens. However, you requested 5100 tokens "
            "(5000 in the messages, 100 in the completion). Please reduce the length of the messages or completion.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }


def test_drop_closes_the_connection_without_an_answer(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [Drop(), Reply("after")]
    conn = connect(fake_model_server)
    with pytest.raises(http.client.RemoteDisconnected):
        post(conn, chat())
    conn.close()
    conn = connect(fake_model_server)
    assert json.loads(post(conn, chat())[2])["choices"][0]["message"]["content"] == "after"
    conn.close()


def test_api_key_and_model_name_are_checked_before_the_script() -> None:
    with FakeOpenAIServer([Reply("ok")], api_key="k") as server:
        conn = connect(server)
        no_key = post(conn, chat())
        conn.request("POST", "/v1/chat/completions", json.dumps(chat(model="other")), {"Authorization": "Bearer k"})
        response = conn.getresponse()
        wrong_model = (response.status, json.loads(response.read()))
        conn.close()
        assert len(server.script) == 1 and len(server.requests) == 2  # both recorded, no step used
    assert (no_key[0], json.loads(no_key[2])) == (401, {"error": "Unauthorized"})
    not_found = {"message": "The model `other` does not exist.", "type": "NotFoundError", "param": None, "code": 404}
    assert wrong_model == (404, {"error": not_found})


def test_malformed_tool_call_helpers(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [invalid_arguments_reply("bash"), unknown_tool_reply("teleport")]
    conn = connect(fake_model_server)
    bad_json, unknown = (json.loads(post(conn, chat())[2])["choices"][0] for _ in range(2))
    conn.close()
    with pytest.raises(json.JSONDecodeError):
        json.loads(bad_json["message"]["tool_calls"][0]["function"]["arguments"])
    assert unknown["message"]["tool_calls"][0]["function"] == {"name": "teleport", "arguments": "{}"}
    assert bad_json["finish_reason"] == unknown["finish_reason"] == "tool_calls"


def test_streaming_reassembles_to_the_same_reply(fake_model_server: FakeOpenAIServer) -> None:
    call = tool_call("bash", {"command": "ls"}, call_id="call_s")
    reply = Reply("Listing.", tool_calls=[call], reasoning_content="Think.", usage={"prompt_tokens": 50})
    fake_model_server.script = [reply]
    client = openai.OpenAI(base_url=fake_model_server.base_url, api_key="EMPTY", max_retries=0)

    chunks = list(
        client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    client.close()

    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    assert "".join(d.content or "" for d in deltas) == "Listing."
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas) == "Think."
    calls = [c for d in deltas for c in d.tool_calls or []]
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [("call_s", "bash", '{"command": "ls"}')]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 50


def test_http_error_can_carry_any_body(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [HttpError(503, body={"detail": "warming up"})]
    conn = connect(fake_model_server)
    status, _, body = post(conn, chat())
    conn.close()
    assert (status, json.loads(body)) == (503, {"detail": "warming up"})
