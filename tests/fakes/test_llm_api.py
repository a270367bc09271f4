"""The fake LLM servers, exercised only through the real openai / anthropic / instructor clients."""

# ruff: noqa: F811  -- fixtures imported from the plugin module are test parameters

import json
import math
import time

import anthropic
import httpx
import instructor
import openai
import pytest
from pydantic import BaseModel

from tests.audio import wav_tone
from tests.fakes.llm_api import (  # noqa: F401
    error,
    fake_llm,
    fake_llm_server,
    make_fake_llm,
    malformed,
    streamed,
    text,
    tool_call,
    tool_calls,
    transcription,
    vectors,
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
USER = [{"role": "user", "content": "hello"}]


class Profile(BaseModel):
    name: str
    age: int


def oai(fake, key="sk-test"):
    return openai.OpenAI(base_url=f"{fake.base_url}/v1", api_key=key, max_retries=0)


def ant(fake, key="sk-ant-test"):
    return anthropic.Anthropic(base_url=fake.base_url, api_key=key, max_retries=0)


def test_openai_text_reply_and_usage(fake_llm):
    fake_llm.openai.push(text("Hi there", prompt_tokens=120, completion_tokens=7, cached_tokens=100))

    resp = oai(fake_llm).chat.completions.create(model="gpt-4o-mini", messages=USER, temperature=0.2)

    assert resp.object == "chat.completion"
    assert resp.model == "gpt-4o-mini"
    assert resp.id.startswith("chatcmpl-")
    assert resp.choices[0].message.content == "Hi there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].message.tool_calls is None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (120, 7, 127)
    assert resp.usage.prompt_tokens_details.cached_tokens == 100
    [req] = fake_llm.requests_to("openai")
    assert req.path == "/v1/chat/completions"
    assert req.body == {"model": "gpt-4o-mini", "messages": USER, "temperature": 0.2}


def test_empty_queue_answers_ok_and_api_key_is_recorded(fake_llm):
    reply = oai(fake_llm, key="sk-pool-2").chat.completions.create(model="m", messages=USER)
    msg = ant(fake_llm, key="sk-ant-9").messages.create(model="claude", max_tokens=10, messages=USER)

    assert reply.choices[0].message.content == "ok"
    assert msg.content[0].text == "ok"
    assert [r.api_key for r in fake_llm.requests] == ["sk-pool-2", "sk-ant-9"]
    assert fake_llm.requests[1].headers["anthropic-version"]


def test_openai_tool_call(fake_llm):
    fake_llm.openai.push(tool_call("get_weather", {"city": "Paris"}, call_id="call_abc", text="Checking"))
    tool_choice = {"type": "function", "function": {"name": "get_weather"}}

    resp = oai(fake_llm).chat.completions.create(model="m", messages=USER, tools=TOOLS, tool_choice=tool_choice)

    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking"
    [call] = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == ("call_abc", "function", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    body = fake_llm.requests_to("openai")[0].body
    assert body["tools"] == TOOLS
    assert body["tool_choice"] == tool_choice


def test_openai_several_tool_calls_in_one_reply(fake_llm):
    fake_llm.openai.push(tool_calls([("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Rome"})]))

    resp = oai(fake_llm).chat.completions.create(model="m", messages=USER, tools=TOOLS)

    calls = resp.choices[0].message.tool_calls
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Oslo", "Rome"]
    assert all(c.id.startswith("call_") for c in calls)
    assert calls[0].id != calls[1].id
    assert resp.choices[0].message.content is None


def test_anthropic_text_usage_and_cache_control_recorded(fake_llm):
    fake_llm.anthropic.push(text("Bonjour", prompt_tokens=1000, completion_tokens=12, cached_tokens=900))
    system = [{"type": "text", "text": "You are a bot. " * 50, "cache_control": {"type": "ephemeral"}}]

    msg = ant(fake_llm).messages.create(model="claude-test", max_tokens=100, system=system, messages=USER)

    assert (msg.type, msg.role, msg.model, msg.stop_reason) == ("message", "assistant", "claude-test", "end_turn")
    assert msg.id.startswith("msg_")
    assert [(b.type, b.text) for b in msg.content] == [("text", "Bonjour")]
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (100, 12)
    assert msg.usage.cache_read_input_tokens == 900
    assert msg.usage.cache_creation_input_tokens == 0
    [req] = fake_llm.requests_to("anthropic")
    assert req.path == "/v1/messages"
    assert req.body["system"] == system
    assert req.body["max_tokens"] == 100


def test_anthropic_tool_use(fake_llm):
    fake_llm.anthropic.push(tool_call("get_weather", {"city": "Lima"}, text="Let me check", cache_creation_tokens=4))
    tools = [{"name": "get_weather", "input_schema": TOOLS[0]["function"]["parameters"]}]

    msg = ant(fake_llm).messages.create(model="claude", max_tokens=50, messages=USER, tools=tools)

    assert msg.stop_reason == "tool_use"
    text_block, tool_block = msg.content
    assert text_block.text == "Let me check"
    assert (tool_block.type, tool_block.name, tool_block.input) == ("tool_use", "get_weather", {"city": "Lima"})
    assert tool_block.id.startswith("toolu_")
    assert (msg.usage.input_tokens, msg.usage.cache_creation_input_tokens) == (6, 4)
    assert fake_llm.requests_to("anthropic")[0].body["tools"] == tools


def test_rate_limit_with_retry_after(fake_llm):
    fake_llm.openai.push(error(429, retry_after=7))
    fake_llm.anthropic.push(error(429, retry_after=3, message="slow down"))

    with pytest.raises(openai.RateLimitError) as oe:
        oai(fake_llm).chat.completions.create(model="m", messages=USER)
    with pytest.raises(anthropic.RateLimitError) as ae:
        ant(fake_llm).messages.create(model="c", max_tokens=5, messages=USER)

    assert oe.value.status_code == 429
    assert oe.value.response.headers["retry-after"] == "7"
    assert oe.value.code == "rate_limit_exceeded"
    assert ae.value.response.headers["retry-after"] == "3"
    assert ae.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}


def test_server_errors_map_to_client_exceptions(fake_llm):
    fake_llm.openai.push(error(500), error(502), error(401))
    fake_llm.anthropic.push(error(529), error(500), error(503))
    client, aclient = oai(fake_llm), ant(fake_llm)

    for status, exc in [
        (500, openai.InternalServerError),
        (502, openai.InternalServerError),
        (401, openai.AuthenticationError),
    ]:
        with pytest.raises(exc) as info:
            client.chat.completions.create(model="m", messages=USER)
        assert info.value.status_code == status
    for status, exc, kind in [
        (529, anthropic.OverloadedError, "overloaded_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.ServiceUnavailableError, "api_error"),
    ]:
        with pytest.raises(exc) as info:
            aclient.messages.create(model="c", max_tokens=5, messages=USER)
        assert (info.value.status_code, info.value.body["error"]["type"]) == (status, kind)


def test_malformed_success_reaches_client(fake_llm):
    fake_llm.openai.push(
        malformed({"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}),
        malformed('{"id": "trunc'),
        malformed("<html>bad gateway</html>", 502, content_type="text/html"),
    )
    client = oai(fake_llm)

    assert client.chat.completions.create(model="m", messages=USER).choices == []
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(model="m", messages=USER)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="m", messages=USER)
    assert info.value.body == "<html>bad gateway</html>"


def test_embeddings_deterministic_normalised_and_scripted(fake_llm):
    client = oai(fake_llm)
    fake_llm.embeddings.set("pinned", [1.0, 0.0, 0.0, 0.0])

    first = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], dimensions=8)
    again = client.embeddings.create(model="text-embedding-3-small", input="alpha", dimensions=8)
    default = client.embeddings.create(model="e", input=["alpha", "pinned"], encoding_format="float")
    fake_llm.embeddings.push(vectors([[0.6, 0.8]]))
    scripted = client.embeddings.create(model="e", input="anything")

    a, b = (d.embedding for d in first.data)
    assert [d.index for d in first.data] == [0, 1]
    assert len(a) == 8
    assert math.isclose(sum(x * x for x in a), 1.0, rel_tol=1e-5)
    assert a != b
    assert again.data[0].embedding == a
    assert first.model == "text-embedding-3-small"
    assert first.usage.prompt_tokens == first.usage.total_tokens == 2
    assert len(default.data[0].embedding) == 16
    assert default.data[1].embedding == [1.0, 0.0, 0.0, 0.0]
    assert scripted.data[0].embedding == pytest.approx([0.6, 0.8])
    assert [r.body.get("dimensions") for r in fake_llm.requests_to("embeddings")] == [8, 8, None, None]


def test_instructor_openai_tools(fake_llm):
    fake_llm.openai.push(tool_call("Profile", {"name": "Ann", "age": 31}))
    client = instructor.from_openai(oai(fake_llm), mode=instructor.Mode.TOOLS)

    profile = client.chat.completions.create(model="gpt-4o-mini", response_model=Profile, messages=USER)

    assert (type(profile).__name__, profile.model_dump()) == ("Profile", {"name": "Ann", "age": 31})
    body = fake_llm.requests_to("openai")[0].body
    assert body["tools"][0]["function"]["name"] == "Profile"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "Profile"}}


def test_instructor_anthropic_tools(fake_llm):
    fake_llm.anthropic.push(tool_call("Profile", {"name": "Bob", "age": 40}))
    client = instructor.from_anthropic(ant(fake_llm), mode=instructor.Mode.TOOLS)

    profile = client.messages.create(model="claude", max_tokens=200, response_model=Profile, messages=USER)

    assert (type(profile).__name__, profile.model_dump()) == ("Profile", {"name": "Bob", "age": 40})
    body = fake_llm.requests_to("anthropic")[0].body
    assert body["tools"][0]["name"] == "Profile"
    assert (body["tool_choice"]["type"], body["tool_choice"]["name"]) == ("tool", "Profile")


def test_fail_all_and_recover_on_independent_servers(fake_llm, make_fake_llm):
    backup = make_fake_llm()
    assert backup.base_url != fake_llm.base_url
    fake_llm.openai.push(text("queued"))
    fake_llm.fail_all("openai", 503)

    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            oai(fake_llm).chat.completions.create(model="m", messages=USER)
    assert oai(backup).chat.completions.create(model="m", messages=USER).choices[0].message.content == "ok"

    fake_llm.recover("openai")
    assert oai(fake_llm).chat.completions.create(model="m", messages=USER).choices[0].message.content == "queued"
    assert len(fake_llm.requests_to("openai")) == 4
    assert len(backup.requests) == 1


def test_responder_computes_reply_from_request(fake_llm):
    fake_llm.anthropic.responder = lambda req: text(f"echo: {req.body['messages'][-1]['content']}")
    fake_llm.anthropic.push(text("scripted first"))
    client = ant(fake_llm)

    replies = [
        client.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": q}]) for q in ("a", "b")
    ]

    assert [m.content[0].text for m in replies] == ["scripted first", "echo: b"]


def test_delay_and_wait_for(fake_llm):
    fake_llm.openai.push(text("slow", delay=0.3))

    started = time.monotonic()
    resp = oai(fake_llm).chat.completions.create(model="m", messages=USER)

    assert time.monotonic() - started >= 0.3
    assert resp.choices[0].message.content == "slow"
    assert len(fake_llm.wait_for("openai", 1, timeout=1)) == 1
    with pytest.raises(TimeoutError):
        fake_llm.wait_for("anthropic", 1, timeout=0.05)


def test_streaming_chat_completions_speak_server_sent_events_with_pacing_tool_deltas_and_usage(fake_llm):
    fake_llm.openai.push(
        streamed("one two three", first_token_after=0.4, total=0.8, prompt_tokens=7, completion_tokens=3),
        tool_call("search", {"query": "a longer query"}, call_id="call_9"),
    )
    body = {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
    started = time.monotonic()
    with httpx.stream("POST", f"{fake_llm.base_url}/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [(time.monotonic() - started, line) for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for _, line in lines)
    assert lines[-1][1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for _, line in lines[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "one two three"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 7
    token_times = [at for at, line in lines if '"content": "' in line and '"content": ""' not in line]
    assert token_times[0] >= 0.35
    assert token_times[-1] - token_times[0] >= 0.35

    del body["stream_options"]  # no usage chunk unless asked
    with httpx.stream("POST", f"{fake_llm.base_url}/v1/chat/completions", json=body) as response:
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line and line != "data: [DONE]"]
    deltas = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert deltas[0]["id"] == "call_9"
    assert deltas[0]["function"]["name"] == "search"
    assert json.loads("".join(d["function"]["arguments"] for d in deltas)) == {"query": "a longer query"}
    assert len(deltas) > 2
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(c["choices"] for c in chunks)


def test_audio_transcriptions_take_a_multipart_upload_and_answer_by_its_bytes(fake_llm):
    hello, other = wav_tone(seconds=2.5), wav_tone(seconds=1.0, frequency=880)
    fake_llm.transcriptions.set(hello, "Hello, I need my windows cleaned.")
    client = oai(fake_llm)

    verbose = client.audio.transcriptions.create(
        model="whisper-1", file=("voice.oga", hello, "audio/ogg"), response_format="verbose_json"
    )
    plain = client.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=("v.wav", other, "audio/wav"))
    fake_llm.transcriptions.push(transcription("scripted words", seconds=7), error(503))
    scripted = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", other), response_format="json")
    with pytest.raises(openai.InternalServerError):
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", other))

    assert (verbose.text, verbose.duration) == ("Hello, I need my windows cleaned.", 2.5)
    assert plain.text.startswith("audio ")  # unknown bytes: a stable text of their own
    assert scripted.text == "scripted words"
    first, second, *_ = fake_llm.requests_to("transcriptions")
    assert first.path == "/v1/audio/transcriptions"
    assert (first.body["model"], first.body["response_format"]) == ("whisper-1", "verbose_json")
    assert first.body["file"]["filename"] == "voice.oga"
    assert first.upload == hello
    assert (second.body["model"], second.upload) == ("gpt-4o-mini-transcribe", other)
    assert len(fake_llm.requests_to("transcriptions")) == 4
