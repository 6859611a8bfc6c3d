"""OpenAIModel against the scripted server: the real `openai` client over real sockets."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from agent.config import ModelPrices, ModelSettings
from agent.errors import EnvironmentProblem, UsageError
from agent.model import ContextLengthExceeded, ModelError, OpenAIModel, OutOfTime, retry_after_seconds
from agent.profiles import GENERIC, pick_profile
from agent.redaction import public_url
from tests.fakes.openai_server import (
    Delay,
    Drop,
    FakeOpenAIServer,
    Hang,
    HttpError,
    NotJson,
    Reply,
    Trickle,
    context_length_error,
    rate_limited,
    server_error,
    tool_call,
)

MESSAGES = [{"role": "system", "content": "You fix bugs."}, {"role": "user", "content": "Fix the failing test."}]
BASH_TOOL = {
    "type": "function",
    "function": {"name": "bash", "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}},
}


class SleepRecorder:
    """Stands in for time.sleep so tests can check the waits without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Events:
    """Records what the client reports while it waits and retries."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        self.seen.append((kind, data))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [data for seen, data in self.seen if seen == kind]


def make_model(server: FakeOpenAIServer, sleep: SleepRecorder | None = None, **overrides: Any) -> OpenAIModel:
    return OpenAIModel(server.model_settings(**overrides), sleep=sleep or SleepRecorder())


def test_reply_carries_content_raw_tool_calls_reasoning_and_usage(fake_model_server: FakeOpenAIServer) -> None:
    call = tool_call("bash", {"command": "pytest -x"}, call_id="call_a")
    fake_model_server.script = [Reply("Running the tests.", tool_calls=[call], reasoning_content="Look first.")]
    model = make_model(fake_model_server)

    reply = model.query(MESSAGES, [BASH_TOOL])

    assert reply.content == "Running the tests."
    assert reply.native_tool_calls == [call]
    assert reply.reasoning == "Look first."
    assert reply.finish_reason == "tool_calls"
    assert reply.raw["choices"][0]["message"]["reasoning_content"] == "Look first."
    reported = reply.raw["usage"]
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        reported["prompt_tokens"],
        reported["completion_tokens"],
    )
    assert reply.usage.prompt_tokens > 0 and reply.usage.cached_tokens is None
    assert reply.cost is None
    assert fake_model_server.requests[0]["messages"] == MESSAGES


def test_a_lone_client_talks_to_the_first_of_base_urls(fake_model_server: FakeOpenAIServer) -> None:
    # A user's config naming only `base_urls` sent `agent fix` to the default base_url (ninth #16 tester).
    fake_model_server.script = [Reply("Done.")]
    served = fake_model_server.model_settings()
    settings = served.model_copy(update={"base_url": "http://127.0.0.1:9/v1",
                                         "base_urls": [served.base_url, "http://127.0.0.1:9/v1"]})
    model = OpenAIModel(settings, sleep=SleepRecorder())
    assert model.query(MESSAGES, []).content == "Done."
    assert model.url == public_url(served.base_url)


def test_plain_reply_has_no_tool_calls_and_no_reasoning(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [Reply("Done.")]
    reply = make_model(fake_model_server).query(MESSAGES, [])
    assert (reply.content, reply.native_tool_calls, reply.reasoning, reply.finish_reason) == ("Done.", [], None, "stop")


def test_reported_usage_cached_tokens_and_cost(fake_model_server: FakeOpenAIServer) -> None:
    usage = {"prompt_tokens": 12000, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 11000}}
    fake_model_server.script = [Reply("ok", usage=usage)]
    model = make_model(fake_model_server, prices=ModelPrices(input=2.0, output=8.0))

    reply = model.query(MESSAGES, [])

    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.cached_tokens) == (12000, 300, 11000)
    assert reply.cost == pytest.approx((12000 * 2.0 + 300 * 8.0) / 1_000_000)


def test_profile_sampling_is_sent_with_non_openai_keys_at_top_level() -> None:
    with FakeOpenAIServer([Reply("ok")], model="Qwen/Qwen3-Coder-30B-A3B-Instruct-FP8") as server:
        make_model(server).query(MESSAGES, [])
        sent = server.requests[0]
    assert (sent["temperature"], sent["top_p"], sent["top_k"], sent["repetition_penalty"]) == (0.7, 0.8, 20, 1.05)
    assert "extra_body" not in sent


def test_settings_override_profile_sampling_and_extra_body_passes_through() -> None:
    extra = {"top_k": 40, "chat_template_kwargs": {"enable_thinking": False}, "min_p": 0.05}
    with FakeOpenAIServer([Reply("ok")], model="qwen3-coder") as server:
        make_model(server, temperature=0.2, max_tokens=512, extra_body=extra).query(MESSAGES, [])
        sent = server.requests[0]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.2, 0.8, 512)
    assert (sent["top_k"], sent["min_p"], sent["repetition_penalty"]) == (40, 0.05, 1.05)
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}


def test_hybrid_model_with_thinking_switched_off_gets_non_thinking_sampling() -> None:
    extra = {"chat_template_kwargs": {"enable_thinking": False}}
    with FakeOpenAIServer([Reply("ok"), Reply("ok")], model="Qwen/Qwen3-235B-A22B") as server:
        thinking = make_model(server)
        thinking.query(MESSAGES, [])
        plain = make_model(server, extra_body=extra)
        plain.query(MESSAGES, [])
        first, second = server.requests
    assert thinking.thinks and (first["temperature"], first["top_p"]) == (0.6, 0.95)
    assert not plain.thinks and (second["temperature"], second["top_p"]) == (0.7, 0.8)


def test_tools_are_sent_only_while_native_tools_are_on(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [Reply("a"), Reply("b")]
    model = make_model(fake_model_server)
    assert model.native_tools

    model.query(MESSAGES, [BASH_TOOL])
    model.native_tools = False  # what the loop does when the server rejects tools
    model.query(MESSAGES, [BASH_TOOL])

    assert fake_model_server.requests[0]["tools"] == [BASH_TOOL]
    assert "tools" not in fake_model_server.requests[1]


def test_text_tool_format_comes_from_settings_or_profile(fake_model_server: FakeOpenAIServer) -> None:
    forced = make_model(fake_model_server, tool_format="xml")
    fake_model_server.script = [Reply("ok")]
    forced.query(MESSAGES, [BASH_TOOL])

    assert not forced.native_tools and forced.text_tool_format == "xml"
    assert "tools" not in fake_model_server.requests[0]
    assert make_model(fake_model_server, name="qwen3-coder").text_tool_format == "xml"
    assert make_model(fake_model_server, name="Qwen3-235B-A22B-Instruct-2507").text_tool_format == "hermes"


@pytest.mark.parametrize("answer", [NotJson(), NotJson('{"choices": [', "application/json"), NotJson("[]", "application/json")])
def test_a_reply_that_is_not_a_json_object_is_one_clear_error(fake_model_server: FakeOpenAIServer, answer) -> None:
    fake_model_server.script = [answer]
    with pytest.raises(ModelError) as caught:
        make_model(fake_model_server).query(MESSAGES, [BASH_TOOL])
    message = str(caught.value)
    assert "\n" not in message and fake_model_server.base_url in message and "not a JSON object" in message
    assert answer.body.split("<body>")[-1][:10] in message or "unparsable JSON" in message


def test_429_waits_for_retry_after_then_succeeds(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [rate_limited(retry_after=0.03), Reply("ok")]
    sleep = SleepRecorder()

    reply = make_model(fake_model_server, sleep, retry_backoff_max=5.0).query(MESSAGES, [])

    assert reply.content == "ok"
    assert sleep.waits == [0.03]
    assert len(fake_model_server.requests) == 2


def test_retry_after_is_capped_by_backoff_max(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [rate_limited(retry_after=3600), Reply("ok")]
    sleep = SleepRecorder()
    make_model(fake_model_server, sleep, retry_backoff_max=0.05).query(MESSAGES, [])
    assert sleep.waits == [0.05]


def test_persistent_500_gives_one_line_model_error_after_all_attempts(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [server_error("CUDA out of memory")] * 4
    sleep = SleepRecorder()
    model = make_model(fake_model_server, sleep, retries=3, retry_backoff_base=0.01, retry_backoff_max=1.0)

    with pytest.raises(ModelError) as caught:
        model.query(MESSAGES, [])

    message = str(caught.value)
    assert message == (
        f"model server at {fake_model_server.base_url} kept failing after 4 attempts: HTTP 500: CUDA out of memory"
    )
    assert isinstance(caught.value, EnvironmentProblem)
    assert len(fake_model_server.requests) == 4
    # Full jitter: each wait is somewhere in [0, base * 2^(attempt-1)].
    assert len(sleep.waits) == 3
    assert all(0 <= wait <= 0.01 * 2**i for i, wait in enumerate(sleep.waits))


def test_500_then_success_is_retried(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [server_error(), server_error(), Reply("recovered")]
    assert make_model(fake_model_server, retries=2).query(MESSAGES, []).content == "recovered"
    assert len(fake_model_server.requests) == 3


def test_slow_reply_times_out_and_is_retried(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [Delay(5.0, then=Reply("too late")), Reply("on time")]
    reply = make_model(fake_model_server, request_timeout=0.3).query(MESSAGES, [])
    assert reply.content == "on time"
    assert len(fake_model_server.requests) == 2


def test_timeouts_on_every_attempt_end_in_model_error(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [Delay(5.0), Delay(5.0)]
    with pytest.raises(ModelError, match=r"timed out after 2 attempts: no reply within 0.3s$"):
        make_model(fake_model_server, request_timeout=0.3, retries=1).query(MESSAGES, [])


def test_dropped_connection_is_retried(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [Drop(), Reply("second try")]
    assert make_model(fake_model_server).query(MESSAGES, []).content == "second try"
    assert len(fake_model_server.requests) == 2


def test_unreachable_server_names_url_and_attempts() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    model = OpenAIModel(ModelSettings(base_url=url, name="any", retries=3), sleep=SleepRecorder())

    with pytest.raises(ModelError) as caught:
        model.query(MESSAGES, [])

    assert str(caught.value) == f"model server at {url} unreachable after 4 attempts: Connection refused"


def test_context_overflow_is_not_retried(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [context_length_error(max_model_len=32768), Reply("never sent")]
    sleep = SleepRecorder()

    with pytest.raises(ContextLengthExceeded, match="maximum context length is 32768 tokens"):
        make_model(fake_model_server, sleep, retries=5).query(MESSAGES, [])

    assert len(fake_model_server.requests) == 1
    assert sleep.waits == []


@pytest.mark.parametrize(
    "wording",
    [
        "The input (40000 tokens) is longer than the model's context length (32768 tokens).",  # SGLang
        "the request exceeds the available context size, try increasing it",  # llama.cpp
    ],
)
def test_other_servers_context_overflow_wordings_are_recognised(
    fake_model_server: FakeOpenAIServer, wording: str
) -> None:
    fake_model_server.script = [HttpError(400, wording)]
    with pytest.raises(ContextLengthExceeded):
        make_model(fake_model_server).query(MESSAGES, [])
    assert len(fake_model_server.requests) == 1


def test_other_400_is_a_plain_model_error_without_retry(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [HttpError(400, "tools are not supported by this server")]
    with pytest.raises(ModelError) as caught:
        make_model(fake_model_server).query(MESSAGES, [BASH_TOOL])
    assert not isinstance(caught.value, ContextLengthExceeded)
    assert "rejected the request (HTTP 400): tools are not supported" in str(caught.value)
    assert len(fake_model_server.requests) == 1


def test_wrong_api_key_fails_at_once() -> None:
    with FakeOpenAIServer([Reply("never")], api_key="right-key") as server:
        model = make_model(server, api_key="wrong-key")
        with pytest.raises(ModelError) as caught:
            model.query(MESSAGES, [])
        assert len(server.requests) == 1
        assert make_model(server).query(MESSAGES, []).content == "never"  # the right key works
    message = str(caught.value)
    assert "refused the API key (HTTP 401): Unauthorized" in message and "\n" not in message


def test_unknown_model_name_on_server_fails_at_once(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [Reply("never")]
    with pytest.raises(ModelError, match=r"model 'qwen3-typo' not found at .* \(HTTP 404\)"):
        make_model(fake_model_server, name="qwen3-typo").query(MESSAGES, [])
    assert len(fake_model_server.requests) == 1


def test_base_url_without_v1_says_the_url_may_lack_it(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [Reply("never")]
    bare = fake_model_server.base_url.removesuffix("/v1")
    with pytest.raises(ModelError) as caught:
        make_model(fake_model_server, base_url=bare).query(MESSAGES, [])
    assert str(caught.value).endswith(f"the URL may lack /v1 (try {bare}/v1), or check model.name")
    with pytest.raises(ModelError) as caught:
        make_model(fake_model_server, name="qwen3-typo").query(MESSAGES, [])
    assert str(caught.value).endswith("; check model.name")  # /v1 is there: the name is what to check


@pytest.mark.parametrize("endpoint", ["/chat/completions", "/completions", "/models", "/chat/completions/"])
def test_base_url_ending_in_an_endpoint_path_says_to_drop_it(fake_model_server: FakeOpenAIServer,
                                                              endpoint: str) -> None:
    fake_model_server.script = [Reply("never")]
    base = fake_model_server.base_url
    with pytest.raises(ModelError) as caught:
        make_model(fake_model_server, base_url=base + endpoint).query(MESSAGES, [])
    message = str(caught.value)
    assert f"the URL ends in the endpoint path {endpoint.rstrip('/')}: drop it (try {base})" in message
    assert "lack /v1" not in message


def test_context_window_comes_from_the_server_and_is_cached() -> None:
    with FakeOpenAIServer(max_model_len=65536) as server:
        model = make_model(server)
        assert model.context_window() == 65536
        server.max_model_len = 1024
        assert model.context_window() == 65536
        assert make_model(server).context_window() == 1024


def test_context_window_override_wins_over_server(fake_model_server: FakeOpenAIServer) -> None:
    assert make_model(fake_model_server, context_window=8192).context_window() == 8192


def test_context_window_falls_back_to_profile() -> None:
    with FakeOpenAIServer(model=None) as server:  # serves any name, lists only "fake-model"
        model = make_model(server, name="Qwen/Qwen3-Coder-480B-A35B-Instruct")
        assert model.context_window() == 262144
    # Server gone: still the profile's answer, never an exception.
    assert make_model(server, name="mystery-model", retries=0).context_window() == GENERIC.context_window


def test_list_models_returns_server_entries(fake_model_server: FakeOpenAIServer) -> None:
    models = make_model(fake_model_server).list_models()
    assert [(entry["id"], entry["max_model_len"]) for entry in models] == [("fake-model", 32768)]


def test_a_models_answer_without_a_list_is_one_model_error(fake_model_server: FakeOpenAIServer) -> None:
    """`/v1/models` is read as plain JSON: a bare list is taken, anything else is one line naming the server."""
    fake_model_server.models_listing = lambda: [{"id": "fake-model", "max_model_len": 4096}, "junk"]
    assert make_model(fake_model_server).list_models() == [{"id": "fake-model", "max_model_len": 4096}]
    fake_model_server.models_listing = lambda: {"detail": "login required"}
    model = make_model(fake_model_server, retries=0)
    with pytest.raises(ModelError, match=r"answered /models with no list of models: \"{'detail': 'login required'}\""):
        model.list_models()
    assert model.context_window() == model.profile.context_window  # the profile's, as when the server is down


def test_unknown_model_name_gets_generic_profile(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [Reply("ok")]
    model = make_model(fake_model_server)
    assert model.profile is GENERIC
    model.query(MESSAGES, [])
    assert "temperature" not in fake_model_server.requests[0]  # no made-up sampling defaults


@pytest.mark.parametrize(
    ("served_name", "profile"),
    [
        ("Qwen/Qwen3-Coder-30B-A3B-Instruct-FP8", "qwen3-coder-30b-a3b"),
        ("qwen3-coder", "qwen3-coder-30b-a3b"),
        ("Qwen/Qwen3-Coder-480B-A35B-Instruct", "qwen3-coder-480b-a35b"),
        ("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", "qwen3-235b-a22b-instruct-2507"),
        ("qwen3-235b-a22b-thinking-2507", "qwen3-235b-a22b-thinking-2507"),
        ("Qwen/Qwen3-235B-A22B", "qwen3-235b-a22b"),
        ("meta-llama/Llama-3.1-8B-Instruct", "generic"),
        ("", "generic"),
    ],
)
def test_profiles_are_picked_by_served_name(served_name: str, profile: str) -> None:
    assert pick_profile(served_name, "auto").name == profile


def test_explicit_profile_wins_and_unknown_explicit_profile_is_a_usage_error() -> None:
    assert pick_profile("mystery", "qwen3-coder-480b-a35b").context_window == 262144
    with pytest.raises(UsageError, match="unknown model profile 'qwen4'"):
        pick_profile("mystery", "qwen4")


def test_retry_after_header_accepts_seconds_and_http_dates() -> None:
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds({"retry-after": "2.5"}) == 2.5
    assert 25 <= retry_after_seconds({"retry-after": soon}) <= 30
    assert retry_after_seconds({"retry-after": "soon-ish"}) is None
    assert retry_after_seconds({}) is None


@pytest.mark.parametrize("flavour", ["vllm", "sglang", "llamacpp", "llamacpp-old", "ollama"])
def test_context_window_is_read_from_every_server_shape(flavour: str) -> None:
    # A server started with -c 8192 / --max-model-len 8192 / num_ctx 8192 serves 8192, not the trained 32768.
    with FakeOpenAIServer(max_model_len=8192, flavour=flavour) as server:
        assert make_model(server).context_window() == 8192


def test_ollama_without_num_ctx_serves_its_default_not_the_trained_length() -> None:
    from agent.served_context import OLLAMA_DEFAULT_NUM_CTX, from_ollama_show

    show = {"parameters": 'stop "<|im_end|>"', "model_info": {"qwen2.context_length": 32768}}
    assert from_ollama_show(show) == OLLAMA_DEFAULT_NUM_CTX
    assert from_ollama_show({"model_info": {"qwen2.context_length": 2048}}) == 2048  # never above training
    assert from_ollama_show({"error": "model not found"}) is None


def test_a_listing_without_any_context_field_falls_back_to_the_profile() -> None:
    with FakeOpenAIServer(flavour="plain") as server:  # no field, no /props, no /api/show
        assert make_model(server).context_window() == GENERIC.context_window


def test_every_request_carries_a_reply_bound() -> None:
    # Unbounded, one compaction reply generated for six minutes on a CPU server.
    with FakeOpenAIServer(max_model_len=8192, flavour="llamacpp") as server:
        server.script = lambda body: Reply("ok")
        make_model(server).query(MESSAGES, [])  # generic profile: 4096, but at most a quarter of 8192
        make_model(server, max_tokens=3000).query(MESSAGES, [])  # the user's bound, up to half the window
        make_model(server, max_tokens=6000).query(MESSAGES, [])
        make_model(server, extra_body={"max_completion_tokens": 77}).query(MESSAGES, [])
        server.max_model_len = 65536
        make_model(server, name="fake-model", context_window=65536).query(MESSAGES, [])
    sent = [r.get("max_tokens") for r in server.requests]
    assert sent == [2048, 3000, 4096, None, 4096]
    assert server.requests[3]["max_completion_tokens"] == 77


def test_a_server_that_never_answers_is_cut_off_at_the_deadline(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [Hang()] * 4
    model = make_model(fake_model_server, request_timeout=600.0, retries=3)
    with pytest.raises(OutOfTime) as caught:
        model.query(MESSAGES, [], deadline=time.monotonic() + 0.5)
    assert "time limit came while waiting for the model server" in str(caught.value)
    assert len(fake_model_server.requests) == 1  # no retry is started without time left for it


def wait_for(condition, seconds: float = 10.0) -> bool:
    """Poll `condition` until it holds or `seconds` pass (an event awaited, not a speed asserted)."""
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.05)
    return condition()


def test_a_trickling_body_is_cut_off_at_the_deadline(fake_model_server: FakeOpenAIServer) -> None:
    """A 200 whose body comes a space at a time restarts httpx's read timeout with every space:
    the deadline must hold over the whole request (before: the late reply came back after 8 s)."""
    fake_model_server.script = [Trickle(every=0.2, seconds=8.0)] * 2
    model = make_model(fake_model_server, request_timeout=600.0, retries=1)
    with pytest.raises(OutOfTime) as caught:
        model.query(MESSAGES, [], deadline=time.monotonic() + 1.0)
    assert "time limit came while waiting for the model server" in str(caught.value)
    assert wait_for(lambda: fake_model_server.cut_connections == 1)  # the connection was closed, not abandoned
    assert len(fake_model_server.requests) == 1


def test_a_trickling_body_times_out_at_the_request_timeout(fake_model_server: FakeOpenAIServer) -> None:
    """Without a deadline, `request_timeout` is the wall-clock bound of each attempt: a timeout, not a broken server."""
    fake_model_server.script = [Trickle(every=0.2, seconds=8.0)] * 2
    model = make_model(fake_model_server, request_timeout=1.0, retries=1)
    with pytest.raises(ModelError, match=r"timed out after 2 attempts: no reply within 1s"):
        model.query(MESSAGES, [])
    assert wait_for(lambda: fake_model_server.cut_connections == 2)


def test_the_context_window_lookup_gives_up_at_the_deadline() -> None:
    """`/v1/models` trickling too: asking for the window must not outlast the run's deadline."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        settings = ModelSettings(base_url=f"http://127.0.0.1:{silent.getsockname()[1]}/v1", name="fake-model",
                                 request_timeout=600.0, retries=3)
        model = OpenAIModel(settings, sleep=SleepRecorder())
        assert model.context_window(time.monotonic() + 0.5) == model.profile.context_window
        assert model.context_window() == model.profile.context_window  # remembered: not asked again for 600 s x 4


def test_a_slow_request_is_reported_while_it_waits(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [Delay(0.8, Reply("late"))]
    events = Events()
    model = OpenAIModel(fake_model_server.model_settings(), sleep=SleepRecorder(), wait_notice=0.1)
    assert model.query(MESSAGES, [], progress=events).content == "late"
    waits = events.of("model_wait")
    assert waits and all(w["attempt"] == 1 and w["attempts"] == 3 for w in waits)
    assert [w["seconds"] for w in waits] == sorted(w["seconds"] for w in waits)
    count = len(waits)
    time.sleep(0.3)
    assert len(events.of("model_wait")) == count  # the ticker stopped with the request it watched


def test_a_retry_is_reported_with_its_reason_and_attempt(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [rate_limited(0.01), server_error(), Reply("ok")]
    events = Events()
    assert make_model(fake_model_server, retries=3).query(MESSAGES, [], progress=events).content == "ok"
    assert events.of("model_retry") == [
        {"attempt": 2, "attempts": 4, "reason": "HTTP 429", "wait": 0.0},
        {"attempt": 3, "attempts": 4, "reason": "HTTP 500", "wait": events.of("model_retry")[1]["wait"]},
    ]


def test_a_backoff_past_the_deadline_is_not_slept(fake_model_server: FakeOpenAIServer) -> None:
    fake_model_server.script = [HttpError(503, "loading", retry_after=30)] * 3
    sleep = SleepRecorder()
    model = make_model(fake_model_server, sleep=sleep, retry_backoff_max=60.0)
    with pytest.raises(OutOfTime, match="time limit comes before .* may be asked again"):
        model.query(MESSAGES, [], deadline=time.monotonic() + 5)
    assert sleep.waits == [] and len(fake_model_server.requests) == 1


def test_lone_surrogates_left_in_a_request_are_sent_as_visible_escapes(fake_model_server: FakeOpenAIServer) -> None:
    """The last line of defence (issue 14, third tester): one byte that is not UTF-8 from a repository, an
    issue or a tool, left as a lone surrogate, used to fail the request with 'surrogates not allowed'."""
    fake_model_server.script = [Reply("Done.")]
    messages = [{"role": "system", "content": "ok"},
                {"role": "user", "content": "Caf\udce9 crash \udcff\udcfe, path \\xe9 and \ud800"}]
    reply = make_model(fake_model_server).query(messages, [])
    assert reply.content == "Done."
    sent = fake_model_server.requests[0]["messages"]
    assert sent[1]["content"] == "Caf\\xe9 crash \\xff\\xfe, path \\\\xe9 and \\ud800"
    assert sent[0] == messages[0] and messages[1]["content"].startswith("Caf\udce9")  # the caller's list untouched


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens", "n_predict", "max_new_tokens", "num_predict"])
@pytest.mark.parametrize("value", [9999999, -1, 0, "9999999", None, 1.5e9, True])
def test_a_reply_bound_in_extra_body_is_capped_whatever_its_spelling(key: str, value: Any) -> None:
    """#16: a repository's `extra_body = { max_tokens = 9999999 }` went out as is (so did `n_predict = -1`)."""
    with FakeOpenAIServer(max_model_len=8192, flavour="llamacpp") as server:
        server.script = lambda body: Reply("ok")
        model = make_model(server, extra_body={key: value, "min_tokens": 9999999})
        model.query(MESSAGES, [])
    sent = server.requests[0]
    bound = 4096 if value == 9999999 else 2048  # asked for: half the 8192 served, as `model.max_tokens`; else a quarter
    assert sent[key] == bound and sent["min_tokens"] == bound
    assert all(sent[name] == bound for name in ("max_tokens", "max_completion_tokens") if name in sent)
    assert model.max_tokens == bound


def test_a_smaller_reply_bound_in_extra_body_is_kept_and_is_the_loops_bound() -> None:
    with FakeOpenAIServer(max_model_len=8192, flavour="llamacpp") as server:
        server.script = lambda body: Reply("ok")
        model = make_model(server, extra_body={"n_predict": 300, "min_tokens": 10})
        model.query(MESSAGES, [])
    sent = server.requests[0]
    assert (sent["n_predict"], sent["max_tokens"], sent["min_tokens"], model.max_tokens) == (300, 300, 10, 300)


@pytest.mark.parametrize(("extra", "expected", "bound"), [
    ({"options": {"num_predict": 9999999, "num_ctx": 8192}}, {"options": {"num_predict": 4096, "num_ctx": 8192}}, 4096),
    ({"options": {"num_predict": -1}}, {"options": {"num_predict": 2048}}, 2048),
    ({"parameters": {"max_new_tokens": 10 ** 9, "min_tokens": 10 ** 9}},
     {"parameters": {"max_new_tokens": 4096, "min_tokens": 4096}}, 4096),
    ({"options": {"num_predict": 300}}, {"options": {"num_predict": 300}}, 300),
    ({"batch": [{"n_predict": 10 ** 9}]}, {"batch": [{"n_predict": 4096}]}, 4096),
])
def test_a_nested_reply_bound_in_extra_body_is_capped_like_a_flat_one(extra: dict[str, Any], expected: dict[str, Any],
                                                                      bound: int) -> None:
    """#16, seventh tester: Ollama's `options.num_predict` (and any bound inside a table) went out as is.
    Asked for: at most half the 8192 served, as `model.max_tokens`; not a positive integer: a quarter."""
    import copy

    before = copy.deepcopy(extra)
    with FakeOpenAIServer(max_model_len=8192, flavour="llamacpp") as server:
        server.script = lambda body: Reply("ok")
        model = make_model(server, extra_body=extra)
        model.query(MESSAGES, [])
    sent = server.requests[0]
    assert {key: sent[key] for key in expected} == expected
    assert model.max_tokens == bound and sent["max_tokens"] == bound
    assert model.settings.extra_body == before  # the settings' own tables are not rewritten


# Issue 16, ninth tester: `.agent.toml` with `context_window = 1e9` and `max_tokens = 5e8` sent
# `"max_tokens": 500000000` with no warning. The served window wins; reply bounds fit in it.
def configured_model(server: FakeOpenAIServer, tmp_path, repo_text: str = "", user_text: str = "",
                     **overrides: Any) -> tuple[OpenAIModel, list[str]]:
    from agent.config import load_settings

    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    (repo / ".agent.toml").write_text(repo_text)
    (tmp_path / "user.toml").write_text(user_text)
    settings = load_settings(repo, env={}, user_file=tmp_path / "user.toml", warn=lambda line: None, overrides={
        "model.base_url": server.base_url, "model.name": server.model or "fake-model", "model.retries": 0,
        **overrides})
    lines: list[str] = []
    return OpenAIModel(settings.model, sleep=SleepRecorder(), warn=lines.append), lines


def test_a_repositorys_window_and_reply_bound_never_exceed_what_the_server_serves(tmp_path) -> None:
    with FakeOpenAIServer(max_model_len=32768) as server:
        server.script = lambda body: Reply("ok")
        model, lines = configured_model(server, tmp_path, "[model]\ncontext_window = 1000000000\n"
                                                          "max_tokens = 500000000\n")
        model.query(MESSAGES, [])
        model.query(MESSAGES, [])
    assert model.context_window() == 32768
    default = min(GENERIC.max_tokens, 32768 // 4)  # what the user's own settings give
    assert [request["max_tokens"] for request in server.requests] == [default, default]
    repo_file = tmp_path / "repo" / ".agent.toml"
    assert lines == [
        f"model.context_window = 1000000000 ({repo_file}) is above the 32768 tokens the server at "
        f"{public_url(server.base_url)} serves; using 32768",
        f"model.max_tokens = 500000000 ({repo_file}) is capped to {default}: the reply bound your own settings "
        "give: a repository's config may only lower it",
    ]


def test_a_configured_window_only_lowers_the_served_one_and_the_users_bound_fits_in_it(tmp_path) -> None:
    with FakeOpenAIServer(max_model_len=16384) as server:
        server.script = lambda body: Reply("ok")
        user = tmp_path / "user.toml"
        mine, lines = configured_model(server, tmp_path, user_text="[model]\ncontext_window = 131072\n"
                                                                   "max_tokens = 20000\n")
        mine.query(MESSAGES, [])
        assert mine.context_window() == 16384 and server.requests[-1]["max_tokens"] == 8192
        assert lines == [f"model.context_window = 131072 ({user}) is above the 16384 tokens the server at "
                         f"{public_url(server.base_url)} serves; using 16384",
                         f"model.max_tokens = 20000 ({user}) is capped to 8192: half of the 16384-token context window"]
        lower, lines = configured_model(server, tmp_path, "[model]\ncontext_window = 4096\nmax_tokens = 300\n")
        lower.query(MESSAGES, [])  # narrowing is the repository's right
        assert lower.context_window() == 4096 and server.requests[-1]["max_tokens"] == 300 and lines == []


def test_where_the_server_says_nothing_a_repositorys_window_is_capped_at_the_profiles(tmp_path) -> None:
    with FakeOpenAIServer(flavour="plain") as server:  # no context field anywhere
        theirs, lines = configured_model(server, tmp_path, "[model]\ncontext_window = 1000000\n")
        assert theirs.context_window() == GENERIC.context_window
        assert lines == [f"model.context_window = 1000000 ({tmp_path / 'repo' / '.agent.toml'}) is above the "
                         f"profile's {GENERIC.context_window} tokens: a repository's config may only lower it; "
                         f"using {GENERIC.context_window}"]
        mine, lines = configured_model(server, tmp_path, user_text="[model]\ncontext_window = 1000000\n")
        assert mine.context_window() == 1000000 and lines == []  # the user's own word, nothing says otherwise


def test_a_reply_bound_in_the_users_extra_body_beyond_the_window_is_capped_with_a_warning(tmp_path) -> None:
    with FakeOpenAIServer(max_model_len=8192) as server:
        server.script = lambda body: Reply("ok")
        model, lines = configured_model(server, tmp_path, user_text="[model]\nextra_body = { n_predict = 100000 }\n")
        model.query(MESSAGES, [])
    assert server.requests[0]["n_predict"] == 4096 and len(lines) == 1
    assert lines[0].startswith("the reply bound 100000 in model.extra_body (your settings") and "4096" in lines[0]


def test_a_repositorys_choice_of_profile_cannot_raise_the_reply_bound_or_window_the_users_settings_give(tmp_path) -> None:
    """The user serves a model the generic profile covers (4096-token replies, 32768 tokens where the server
    says nothing); a repository naming a Qwen3-Coder profile would double the replies and octuple the window."""
    with FakeOpenAIServer(model=None, flavour="plain") as server:  # any name; no context field anywhere
        server.script = lambda body: Reply("ok")
        model, lines = configured_model(server, tmp_path, '[model]\nprofile = "qwen3-coder-480b-a35b"\n',
                                        user_text='[model]\nname = "my-llama"\n', **{"model.name": None})
        model.query(MESSAGES, [])
        assert model.profile.name == "qwen3-coder-480b-a35b"  # its sampling and tool format still apply
        assert model.context_window() == GENERIC.context_window
        assert server.requests[-1]["max_tokens"] == GENERIC.max_tokens
        assert len(lines) == 2 and all(line.startswith("model profile qwen3-coder-480b-a35b (chosen by "
                                                       f"model.profile in {tmp_path / 'repo' / '.agent.toml'})")
                                       for line in lines)
        mine, lines = configured_model(server, tmp_path, user_text='[model]\nname = "my-llama"\n'
                                                                   'profile = "qwen3-coder-480b-a35b"\n',
                                       **{"model.name": None})
        mine.query(MESSAGES, [])
        assert mine.context_window() == 262144 and server.requests[-1]["max_tokens"] == 8192 and lines == []
