"""The openai generator against a fake OpenAI-compatible server on 127.0.0.1 (http.server in a thread)."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag.errors import ConfigError
from rag.generation import GenerationError, OpenAIGenerator, create_generator
from rag.types import Chunk


class FakeServer:
    """Answers POST /v1/chat/completions from a queue of (status, body, headers); records every request. A
    callable body writes the whole reply itself, given the request handler."""

    def __init__(self):
        self.requests: list[dict] = []
        self.replies: list[tuple[int, object, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length", 0))
                server.requests.append({"path": self.path, "headers": dict(self.headers),
                                        "body": json.loads(self.rfile.read(length))})
                status, body, headers = server.replies.pop(0) if server.replies else (200, reply("ok"), {})
                if callable(body):  # writes the reply itself (a broken or slow one)
                    body(self)
                    return
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def reply(content: str) -> dict:
    return {"id": "x", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


@pytest.fixture
def server():
    fake = FakeServer()
    yield fake
    fake.close()


def generator_for(server, **options) -> OpenAIGenerator:
    spec = {"name": "openai", "model": "tiny-chat", "base_url": server.base_url, "backoff": 0.0, **options}
    return create_generator(spec)  # type: ignore[return-value]


CHUNKS = [Chunk("bm25#0", "bm25", "BM25 ranks by term frequency.", 0, 29, 6),
          Chunk("late#1", "late", "Late chunking pools token spans.", 10, 42, 6)]


def test_complete_posts_a_chat_completion_with_model_messages_and_options(server, monkeypatch):
    monkeypatch.setenv("RAG_TEST_KEY", "sk-test-123")
    generator = generator_for(server, api_key_env="RAG_TEST_KEY", temperature=0.2, system_prompt="Be brief.")
    server.replies.append((200, reply("Hello there"), {}))
    assert generator.complete("Say hello", max_tokens=7, stop=["\n"]) == "Hello there"
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test-123"
    assert request["body"] == {"model": "tiny-chat", "temperature": 0.2, "max_tokens": 7, "stop": ["\n"],
                               "messages": [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "Say hello"}]}
    assert generator.model_calls == 1


def test_no_api_key_in_the_environment_sends_no_authorization_header(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    generator_for(server).complete("hi")
    assert "Authorization" not in server.requests[0]["headers"]


def test_answer_prompts_with_chunk_ids_and_parses_citations_back(server):
    server.replies.append((200, reply("BM25 uses term frequency [bm25#0]. Late chunking pools spans [late#1]."), {}))
    answer = generator_for(server).answer("Compare BM25 and late chunking", CHUNKS)
    prompt = server.requests[0]["body"]["messages"][-1]["content"]
    assert "[bm25#0]" in prompt and "[late#1]" in prompt and "Compare BM25 and late chunking" in prompt
    assert [c.chunk_id for c in answer.citations] == ["bm25#0", "late#1"]
    assert answer.generator == "openai" and answer.model_calls == 1


def test_empty_context_answers_without_calling_the_server(server):
    answer = generator_for(server).answer("anything?", [])
    assert answer.citations == () and server.requests == []


def test_rate_limits_and_server_errors_are_retried_then_succeed(server):
    server.replies += [(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}),
                       (503, {"error": "busy"}, {}), (200, reply("fine"), {})]
    generator = generator_for(server, retries=3)
    assert generator.complete("hi") == "fine"
    assert len(server.requests) == 3 and generator.http_requests == 3 and generator.model_calls == 1


def test_retries_are_bounded_and_the_error_quotes_the_server(server):
    server.replies += [(500, {"error": {"message": "model crashed"}}, {})] * 3
    with pytest.raises(GenerationError, match="HTTP 500 \\(3 attempts\\): model crashed"):
        generator_for(server, retries=2).complete("hi")
    assert len(server.requests) == 3


def test_client_errors_are_not_retried_and_auth_errors_mention_the_key(server):
    server.replies.append((401, {"error": {"message": "invalid api key"}}, {}))
    with pytest.raises(GenerationError, match="HTTP 401.*api_key_env.*invalid api key"):
        generator_for(server, retries=3).complete("hi")
    assert len(server.requests) == 1


def test_malformed_replies_are_clear_errors(server):
    server.replies += [(200, {"choices": []}, {}), (200, b"<html>oops</html>", {})]
    generator = generator_for(server)
    with pytest.raises(GenerationError, match="no choices"):
        generator.complete("hi")
    with pytest.raises(GenerationError, match="did not return JSON"):
        generator.complete("hi")


def test_content_given_as_parts_is_their_text_and_content_of_another_type_is_a_clear_error(server):
    # a number or a list as content ended in a bare AttributeError in the caller (QA pass)
    parts = reply("")
    parts["choices"][0]["message"]["content"] = [{"type": "text", "text": "Answer: "}, {"type": "text", "text": "ID 3"}]
    number = reply("")
    number["choices"][0]["message"]["content"] = 5
    server.replies += [(200, parts, {}), (200, number, {})]
    generator = generator_for(server)
    assert generator.complete("hi") == "Answer: ID 3"
    with pytest.raises(GenerationError, match="returned a int as choices\\[0\\].message.content, not text"):
        generator.complete("hi")


def _headers_then(handler, length: int, parts: list[bytes], pause: float = 0.0):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(length))
    handler.end_headers()
    for part in parts:
        handler.wfile.write(part)
        handler.wfile.flush()
        time.sleep(pause)
    handler.close_connection = True


def test_a_reply_broken_off_is_retried_and_then_a_clear_error(server):
    # QA: a connection closed part way through the reply ended in a bare http.client.IncompleteRead
    full = json.dumps(reply("fine")).encode()
    broken = (200, lambda handler: _headers_then(handler, len(full), [full[:10]]), {})
    server.replies += [broken, (200, reply("fine"), {})]
    assert generator_for(server, retries=2).complete("hi") == "fine"
    server.replies += [broken] * 3
    with pytest.raises(GenerationError, match="broke off its reply \\(3 attempts\\): 10 bytes received, "
                                              f"{len(full) - 10} more expected"):
        generator_for(server, retries=2).complete("hi")
    assert len(server.requests) == 5


def _close_without_reply(handler):
    handler.close_connection = True


def test_a_connection_closed_without_a_reply_is_retried_and_then_named(server):
    # QA: a dropped keep-alive connection (http.client.RemoteDisconnected) failed at once as "cannot reach the
    # server ... is it running?", though the request had reached it
    server.replies += [(200, _close_without_reply, {}), (200, reply("fine"), {})]
    assert generator_for(server, retries=1).complete("hi") == "fine"
    server.replies += [(200, _close_without_reply, {})] * 2
    with pytest.raises(GenerationError, match="closed the connection without a reply \\(2 attempts\\): "
                                              "RemoteDisconnected"):
        generator_for(server, retries=1).complete("hi")
    server.replies.append((200, _close_without_reply, {}))
    with pytest.raises(GenerationError, match="\\(1 attempt\\)"):
        generator_for(server, retries=0).complete("hi")
    assert len(server.requests) == 5


def test_the_timeout_bounds_the_whole_reply_not_each_read(server):
    # QA: a reply sent a byte at a time took 85 s with timeout 2: the socket timeout bounds each read only
    full = json.dumps(reply("fine")).encode()
    server.replies.append((200, lambda handler: _headers_then(handler, len(full), [bytes([b]) for b in full], 0.05), {}))
    started = time.monotonic()
    with pytest.raises(GenerationError, match="did not answer within 0.3 s .*still arriving after 0.3 s"):
        generator_for(server, timeout=0.3, retries=0).complete("hi")
    assert time.monotonic() - started < 2.0


def test_a_port_that_does_not_answer_in_http_is_named_as_such():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer_like_ssh():
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"SSH-2.0-OpenSSH_8.9\r\n")

    thread = threading.Thread(target=answer_like_ssh, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    generator = create_generator({"name": "openai", "model": "m", "base_url": base_url, "backoff": 0.0})
    try:
        with pytest.raises(GenerationError, match="did not answer in HTTP \\(BadStatusLine: SSH-2.0-OpenSSH_8.9\\); "
                                                  "is generator.base_url the server's address"):
            generator.complete("hi")
    finally:
        thread.join(timeout=5)
        listener.close()


def test_connection_refused_is_a_clear_error_naming_the_base_url():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"
    generator = create_generator({"name": "openai", "model": "m", "base_url": base_url, "backoff": 0.0})
    with pytest.raises(GenerationError, match=f"cannot reach .* at {base_url}.*is it running"):
        generator.complete("hi")


def test_base_url_comes_from_the_environment_or_is_a_config_error(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    assert create_generator({"name": "openai", "model": "m"}).endpoint == "http://127.0.0.1:9/v1/chat/completions"
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL") as err:
        create_generator({"name": "openai", "model": "m"})
    assert err.value.path == "generator.base_url"
    with pytest.raises(ConfigError, match="http://"):
        create_generator({"name": "openai", "model": "m", "base_url": "localhost:8000"})


def test_a_missing_base_url_is_found_when_the_config_is_read_with_its_file_and_line(monkeypatch, tmp_path):
    # it was found only when the llm chunker first sent a prompt, after earlier pipelines had run (QA pass)
    from rag.config import load_config

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    path = tmp_path / "pipe.yaml"
    path.write_text("name: t\nindex:\n  chunker:\n    op: llm\n    generator: {name: openai, model: fake}\n"
                    "  structures: [bm25]\nflow: [{op: bm25, top_k: 3}]\n")
    with pytest.raises(ConfigError, match="pipe.yaml:5: index.chunker.generator.base_url: is required"):
        load_config(path)


def test_complete_rejects_bad_arguments_before_calling_the_server(server):
    generator = generator_for(server)
    with pytest.raises(GenerationError, match="max_tokens"):
        generator.complete("hi", max_tokens=0)
    with pytest.raises(GenerationError, match="prompt string"):
        generator.complete(None)  # type: ignore[arg-type]
    assert server.requests == []


def test_more_than_four_stop_strings_are_applied_locally(server):
    server.replies.append((200, reply("one two three"), {}))
    text = generator_for(server).complete("count", stop=["a1", "a2", "a3", "a4", " three"])
    assert text == "one two" and server.requests[0]["body"]["stop"] == ["a1", "a2", "a3", "a4"]
