"""A generator for any OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp server, OpenAI).

Uses only the standard library (``urllib``). ``POST {base_url}/chat/completions`` with the prompt as one
user message; rate limits (429), server errors (5xx), timeouts, replies broken off and connections closed
without a reply are retried with exponential backoff (honouring ``Retry-After``, up to 60 s a wait); anything
else fails at once with the server's message. ``timeout`` bounds each request as a whole: a reply still arriving when it runs out (a
server or proxy sending it a few bytes at a time) counts as a timeout::

    generator:
      name: openai
      base_url: http://localhost:11434/v1     # default: $OPENAI_BASE_URL
      model: qwen2.5:7b-instruct
      api_key_env: OPENAI_API_KEY             # the key is read from this variable (optional for local servers)
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from pydantic import Field, field_validator, model_validator

from rag.errors import ConfigError
from rag.generation.base import GenerationError, LLMGenerator, LLMParams, cut_at_stop

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0


class OpenAIGenerator(LLMGenerator):
    """Answers with a model served behind an OpenAI-compatible ``/chat/completions`` endpoint."""

    name = "openai"

    class Params(LLMParams):
        model: str = Field(description="the model name the server knows")
        base_url: str | None = Field(None, description="server URL up to /v1; default $OPENAI_BASE_URL")
        api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key")
        system_prompt: str | None = Field(None, description="optional system message")
        timeout: float = Field(120.0, gt=0, description="seconds per HTTP request, the whole reply included")
        retries: int = Field(3, ge=0, le=20, description="retries on 429, 5xx, timeouts and broken-off replies")
        backoff: float = Field(1.0, ge=0, description="first retry delay in seconds (doubles each retry)")

        @field_validator("base_url")
        @classmethod
        def _http_url(cls, value: str | None) -> str | None:
            if value is not None and not value.startswith(("http://", "https://")):
                raise ValueError("must start with http:// or https://")
            return value

        @model_validator(mode="after")
        def _has_a_server(self):
            # checked with the config (ragloom validate, file and line), not when the first prompt is sent
            if not self.base_url and not os.environ.get("OPENAI_BASE_URL"):
                raise ConfigError("is required for the 'openai' generator (or set OPENAI_BASE_URL), e.g. "
                                  "http://localhost:8000/v1", "base_url")
            return self

    def __init__(self, params: Params, resources=None):
        super().__init__(params, resources)
        base_url = params.base_url or os.environ.get("OPENAI_BASE_URL", "")  # one of them: Params._has_a_server
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"must start with http:// or https:// (got {base_url!r})", "generator.base_url")
        self.base_url = base_url.rstrip("/")
        self.http_requests = 0

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.params.api_key_env, "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _body(self, prompt: str, max_tokens: int, stop: list[str]) -> dict[str, Any]:
        messages = []
        if self.params.system_prompt:
            messages.append({"role": "system", "content": self.params.system_prompt})
        messages.append({"role": "user", "content": prompt})
        body: dict[str, Any] = {"model": self.params.model, "messages": messages,
                                "temperature": self.params.temperature, "max_tokens": max_tokens}
        if stop:
            body["stop"] = stop[:4]  # the OpenAI API accepts at most four stop sequences
        return body

    def _complete(self, prompt: str, max_tokens: int, stop: list[str]) -> str:
        data = json.dumps(self._body(prompt, max_tokens, stop)).encode("utf-8")
        reply = self._post(data)
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise GenerationError(f"{self.endpoint} returned no choices[0].message.content: "
                                  f"{json.dumps(reply)[:300]}") from None
        if isinstance(content, list):  # content parts ([{"type": "text", "text": ...}]): their text, in order
            content = "".join(part.get("text", "") for part in content
                              if isinstance(part, dict) and isinstance(part.get("text", ""), str))
        if content is not None and not isinstance(content, str):
            raise GenerationError(f"{self.endpoint} returned a {type(content).__name__} as choices[0].message.content, "
                                  f"not text: {json.dumps(reply)[:300]}")
        return cut_at_stop(content or "", stop[4:])  # the stops the server was not sent

    def _post(self, data: bytes) -> dict[str, Any]:
        """POST with retries; the decoded JSON reply."""
        attempts = self.params.retries + 1
        for attempt in range(attempts):
            request = urllib.request.Request(self.endpoint, data=data, headers=self._headers(), method="POST")
            delay = self.params.backoff * (2 ** attempt)
            self.http_requests += 1
            try:
                deadline = time.monotonic() + self.params.timeout
                with urllib.request.urlopen(request, timeout=self.params.timeout) as response:
                    raw = _read_until(response, deadline, self.params.timeout)
                try:
                    return json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    raise GenerationError(f"{self.endpoint} did not return JSON: {raw[:200]!r}") from None
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code not in RETRY_STATUS or attempt == attempts - 1:
                    hint = " (check api_key_env / the API key)" if exc.code in (401, 403) else ""
                    tried = f" ({_attempts(attempts)})" if exc.code in RETRY_STATUS and attempts > 1 else ""
                    raise GenerationError(f"{self.endpoint} answered HTTP {exc.code}{hint}{tried}: {detail}") from None
                delay = _retry_after(exc, delay)
            except (TimeoutError, socket.timeout) as exc:
                if attempt == attempts - 1:
                    raise GenerationError(f"{self.endpoint} did not answer within {self.params.timeout} s "
                                          f"({_attempts(attempts)}): {exc}") from None
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, (TimeoutError, socket.timeout)) and attempt < attempts - 1:
                    time.sleep(delay)
                    continue
                raise GenerationError(f"cannot reach the OpenAI-compatible server at {self.base_url} "
                                      f"({reason}); is it running? Set generator.base_url or OPENAI_BASE_URL") from None
            except ConnectionError as exc:  # before HTTPException: a connection closed before any reply is both
                # the request reached the server (a refused connection comes wrapped in a URLError): a dropped
                # keep-alive connection or a restarting server, worth another attempt
                if attempt == attempts - 1:
                    raise GenerationError(f"{self.endpoint} closed the connection without a reply "
                                          f"({_attempts(attempts)}): {type(exc).__name__}: {exc}") from None
            except http.client.IncompleteRead as exc:  # the connection closed part way through the reply
                if attempt == attempts - 1:
                    raise GenerationError(f"{self.endpoint} broke off its reply ({_attempts(attempts)}): "
                                          f"{len(exc.partial)} bytes received"
                                          + (f", {exc.expected} more expected" if exc.expected else "")) from None
            except http.client.HTTPException as exc:  # not an HTTP reply: another service on that port
                raise GenerationError(f"{self.endpoint} did not answer in HTTP ({type(exc).__name__}: "
                                      f"{str(exc).strip()[:200]}); is generator.base_url the server's address?") from None
            time.sleep(delay)
        raise AssertionError("unreachable")


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


def _read_until(response: http.client.HTTPResponse, deadline: float, timeout: float) -> bytes:
    """The reply's body, read as it arrives; a ``TimeoutError`` once ``deadline`` (``time.monotonic``) has passed:
    the socket's own timeout only bounds each read, and a reply sent a few bytes at a time would never end."""
    parts = []
    while part := response.read1(1 << 16):
        parts.append(part)
        if time.monotonic() > deadline:
            raise TimeoutError(f"the reply was still arriving after {timeout} s "
                               f"({sum(map(len, parts))} bytes received)")
    body = b"".join(parts)
    if response.length:  # read1 ends quietly where read raises: the connection closed before Content-Length
        raise http.client.IncompleteRead(body, response.length)
    return body


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read().decode("utf-8", "replace")
    except Exception:  # the body of an error response may already be closed
        return str(exc.reason)
    try:
        message = json.loads(raw).get("error", raw)
        if isinstance(message, dict):
            message = message.get("message", message)
        return str(message)[:300]
    except (json.JSONDecodeError, AttributeError):
        return raw[:300] or str(exc.reason)


def _retry_after(exc: urllib.error.HTTPError, default: float) -> float:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value))) if value is not None else default
    except ValueError:
        return default
