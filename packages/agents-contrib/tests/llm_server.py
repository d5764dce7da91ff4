"""A scripted LLM server for tests: real HTTP/1.1 on 127.0.0.1, Chat Completions and Messages formats.

Each request is recorded (method, path, headers, parsed JSON body). What the server
answers is scripted per path as a queue of :class:`Reply`; when a path's queue is empty
it answers with a well-formed reply in that path's format. A reply can be delayed, held
until the test releases it, or dropped (the connection closed without an answer); the
server notes when a client goes away while its reply is pending, which is how a test
sees that cancelling a call aborted its HTTP request.

The probes a backend makes to learn the model's context window (llama.cpp's ``/props`` and
``/tokenize``, vLLM's ``/v1/models``, Ollama's ``/api/show``) are recorded apart, in
``probes``, and answered 404 unless the test sets ``probe_answers`` or ``context_tokens``.
With ``context_tokens`` set the server behaves as a llama.cpp server with that window: it
reports it, tokenizes with its own rules (:func:`tokenize`), and refuses with 400 any chat
request whose prompt (with its chat template) and ``max_tokens`` do not fit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

CHAT_PATH = "/v1/chat/completions"
MESSAGES_PATH = "/v1/messages"
PROPS_PATH = "/props"
TOKENIZE_PATH = "/tokenize"
MODELS_PATH = "/v1/models"
SHOW_PATH = "/api/show"
PROBE_PATHS = frozenset({PROPS_PATH, TOKENIZE_PATH, MODELS_PATH, SHOW_PATH})
TEMPLATE_TOKENS_PER_MESSAGE = 5
"""What this server's chat template adds per message (ChatML: <|im_start|>role\n … <|im_end|>\n)."""
TEMPLATE_TOKENS_PER_REQUEST = 3
"""And once per request (the assistant turn's opening)."""
_TOKEN = re.compile(r"\w{1,4}|[^\w\s]|\n")


def tokenize(text: str) -> list[str]:
    """This server's tokenizer: runs of up to four word characters, each symbol, each line break."""
    return _TOKEN.findall(text)


def chat_prompt_tokens(body: Any) -> int:
    """The tokens a chat request's messages take once the chat template is applied."""
    messages = body.get("messages", []) if isinstance(body, dict) else []
    return TEMPLATE_TOKENS_PER_REQUEST + sum(
        TEMPLATE_TOKENS_PER_MESSAGE + len(tokenize(str(message.get("content", "")))) for message in messages
    )

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 529: "Overloaded"}


def chat_completion(content: Any = "ok", *, prompt_tokens: int = 11, completion_tokens: int = 7,
                    finish_reason: str = "stop", model: str = "test-model") -> dict[str, Any]:
    """A Chat Completions reply as OpenAI documents it."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def anthropic_message(text: str = "ok", *, input_tokens: int = 13, output_tokens: int = 5,
                      model: str = "claude-test") -> dict[str, Any]:
    """A Messages API reply as Anthropic documents it."""
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


@dataclass
class Reply:
    """One scripted answer."""

    body: Any = None
    """A dict/list (sent as JSON), str or bytes (sent as is), or None for the path's default."""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hold: asyncio.Event | None = None
    """Answer only once the test sets this event."""
    drop: bool = False
    """Close the connection without answering."""


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class LLMServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.disconnects = 0
        """Requests whose client went away before their reply was sent."""
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections = 0
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.default_text: Callable[[int], str] = lambda n: f"reply {n}"
        self.responder: Callable[[Recorded], Reply] | None = None
        """Answers requests no script covers, when set (e.g. by model and phase)."""
        self.probes: list[Recorded] = []
        """Requests to the paths of PROBE_PATHS, kept apart from ``requests``."""
        self.probe_answers: dict[str, Any] = {}
        """JSON answered (200) at a probe path; a path not here is answered 404."""
        self.context_tokens: int | None = None
        """When set, the server acts as llama.cpp with this window (see the module's docstring)."""
        self.requested_tokens: list[int] = []
        """For each chat request counted against the window: its prompt tokens plus max_tokens."""
        self.refused_as_too_long = 0

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def script(self, path: str, *replies: Reply) -> None:
        self._scripts[path].extend(replies)

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until the server's state satisfies ``predicate`` (the timeout only guards a hang)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while await self._one_exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the server is stopping
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one_exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        request_line = await reader.readline()
        if not request_line.strip():
            return False
        method, target, _ = request_line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        raw = await _read_body(reader, headers)
        path = target.split("?", 1)[0]
        if path in PROBE_PATHS:
            self.probes.append(Recorded(method, path, headers, raw))
            writer.write(self._encode(path, self._probe_reply(path, self.probes[-1])))
            await writer.drain()
            return True
        self.requests.append(Recorded(method, path, headers, raw))
        recorded = self.requests[-1]
        too_long = self._over_the_window(recorded)
        if too_long is not None:
            reply = too_long
        elif self._scripts[path]:
            reply = self._scripts[path].popleft()
        else:
            reply = self.responder(recorded) if self.responder else Reply()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await self._notify()
        try:
            if reply.drop:
                return False
            if (reply.delay or reply.hold) and not await self._wait_unless_gone(reader, reply):
                self.disconnects += 1
                return False
            writer.write(self._encode(path, reply))
            await writer.drain()
            return True
        finally:
            self.in_flight -= 1
            await self._notify()

    def _probe_reply(self, path: str, request: Recorded) -> Reply:
        if path in self.probe_answers:
            return Reply(self.probe_answers[path])
        if self.context_tokens is not None and path == PROPS_PATH:
            return Reply({"default_generation_settings": {"n_ctx": self.context_tokens, "params": {"n_predict": -1}},
                          "total_slots": 1, "model_path": "test-model.gguf"})
        if self.context_tokens is not None and path == TOKENIZE_PATH:
            content = request.json.get("content", "")
            bos = 1 if request.json.get("add_special") else 0
            return Reply({"tokens": list(range(bos + len(tokenize(content))))})
        return Reply({"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}, status=404)

    def _over_the_window(self, request: Recorded) -> Reply | None:
        """vLLM's and llama.cpp's refusal of a request whose prompt and reply budget exceed the window."""
        if self.context_tokens is None or request.path != CHAT_PATH:
            return None
        body = request.json
        prompt = chat_prompt_tokens(body)
        max_tokens = body.get("max_tokens")
        requested = prompt + (max_tokens if isinstance(max_tokens, int) else 0)
        self.requested_tokens.append(requested)
        if requested <= self.context_tokens:
            return None
        self.refused_as_too_long += 1
        message = (f"This model's maximum context length is {self.context_tokens} tokens. However, you "
                   f"requested {requested} tokens ({prompt} in the messages, {max_tokens} in the completion).")
        return Reply({"error": {"code": 400, "message": message, "type": "exceed_context_size_error",
                                "n_prompt_tokens": prompt, "n_ctx": self.context_tokens}}, status=400)

    async def _wait_unless_gone(self, reader: asyncio.StreamReader, reply: Reply) -> bool:
        """False when the client closed the connection before the reply was due."""
        gone = asyncio.ensure_future(reader.read(1))
        due = asyncio.ensure_future(reply.hold.wait() if reply.hold else asyncio.sleep(reply.delay))
        try:
            done, _ = await asyncio.wait({gone, due}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (gone, due):
                future.cancel()
        return due in done and gone not in done

    def _encode(self, path: str, reply: Reply) -> bytes:
        body = reply.body
        if body is None:
            text = self.default_text(len(self.requests_to(path)))
            body = anthropic_message(text) if path == MESSAGES_PATH else chat_completion(text)
        if isinstance(body, dict | list):
            payload = json.dumps(body).encode()
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = body
        headers = {"content-type": "application/json", **{k.lower(): v for k, v in reply.headers.items()}}
        head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head += [f"content-length: {len(payload)}", "connection: keep-alive", "", ""]
        return "\r\n".join(head).encode("latin-1") + payload


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readline()
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readline()
    length = int(headers.get("content-length", "0"))
    return await reader.readexactly(length) if length else b""


@contextlib.asynccontextmanager
async def running_llm_server() -> AsyncIterator[LLMServer]:
    server = LLMServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
