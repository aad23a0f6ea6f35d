"""A fake Prometheus query API for the unit tests: a real HTTP server on a free port whose answers the
test sets (service_levels.prometheus speaks to it over the network, as to Prometheus)."""

import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def vector(*values, labels=None) -> tuple[int, dict]:
    """A success answer of instant vector samples (one per value), as Prometheus gives it."""
    result = [{"metric": labels or {}, "value": [1700000000.0, str(value)]} for value in values]
    return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}


def error(status: int, error_type: str, text: str) -> tuple[int, dict]:
    return status, {"status": "error", "errorType": error_type, "error": text}


@dataclass
class Asked:
    query: str
    time: float
    headers: dict


@dataclass
class FakePrometheus:
    url: str
    # (query, time) -> (HTTP status, JSON body or bytes); the default answers no data
    answer: Callable[[str, float], tuple[int, object]] = lambda query, at: vector()
    delay: float = 0.0
    asked: list[Asked] = field(default_factory=list)


@contextmanager
def serving():
    holder: dict[str, FakePrometheus] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            fake = holder["fake"]
            length = int(self.headers.get("Content-Length", 0))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            query, at = form["query"][0], float(form["time"][0])
            fake.asked.append(Asked(query, at, dict(self.headers)))
            if fake.delay:
                time.sleep(fake.delay)
            status, body = fake.answer(query, at)
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            with suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["fake"] = FakePrometheus(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["fake"]
    finally:
        server.shutdown()
        server.server_close()
