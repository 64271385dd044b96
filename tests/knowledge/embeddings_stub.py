"""A local OpenAI-compatible ``/v1/embeddings`` endpoint (a real HTTP server in a thread).

Vectors are bags of concepts: words of one concept ("lift", "elevator", "Aufzug") share a
dimension, other words are hashed into the rest. So texts that share meaning but no word are
close, which a full-text index cannot see.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIMENSIONS = 32
CONCEPTS = (
    {"lift", "elevator", "aufzug", "fahrstuhl"},
    {"dog", "dogs", "hund", "hunde", "pet", "pets"},
    {"price", "cost", "costs", "euro", "preis", "kostet"},
)


def vector(text: str) -> list[float]:
    values = [0.0] * DIMENSIONS
    for word in re.findall(r"\w+", text.lower()):
        concept = next((i for i, group in enumerate(CONCEPTS) if word in group), None)
        if concept is None:
            digest = hashlib.sha256(word.encode()).digest()
            concept = len(CONCEPTS) + digest[0] % (DIMENSIONS - len(CONCEPTS))
        values[concept] += 1.0
    return values


@dataclass
class EmbeddingsStub:
    base_url: str
    failing: bool = False
    inputs: list[str] = field(default_factory=list)


def _handler(stub: EmbeddingsStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if stub.failing or self.path != "/v1/embeddings":
                self.send_response(500)
                self.end_headers()
                return
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            stub.inputs.extend(texts)
            data = [
                {"object": "embedding", "index": i, "embedding": vector(t)}
                for i, t in enumerate(texts)
            ]
            payload = json.dumps({"object": "list", "data": data, "model": body["model"]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload.encode())

        def log_message(self, *args: object) -> None:
            return

    return Handler


@contextmanager
def serve_embeddings() -> Iterator[EmbeddingsStub]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    stub = EmbeddingsStub(f"http://127.0.0.1:{server.server_address[1]}/v1")
    server.RequestHandlerClass = _handler(stub)
    thread = threading.Thread(target=server.serve_forever, name="embeddings-stub", daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
