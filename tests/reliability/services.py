"""Real services the fault tests start and break on purpose: a private Redis on a
free loopback port (never the shared one on 6379) and a webhook receiver on
loopback that de-duplicates on ``webhook-id`` the way the Standard Webhooks
specification asks receivers to."""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """``redis-server`` as a child process on 127.0.0.1:<free port>, no persistence:
    a restart loses whatever it held, the harshest broker restart there is."""

    def __init__(self, port: int | None = None):
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> PrivateRedis:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # no shutdown save, no goodbye to clients
            self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class DedupReceiver:
    """A webhook receiver on loopback. Every request is logged; the *side effect*
    (``effects``) happens once per ``webhook-id``. ``hold_first`` makes the first
    request wait (the sender is then stuck mid-delivery) until ``release()``."""

    def __init__(self, hold_first: bool = False, codes: list[int] | None = None, port: int = 0):
        self.requests: list[dict] = []
        self.effects: list[str] = []
        self.codes = list(codes or [])
        self.lock = threading.Lock()
        self.first_arrived = threading.Event()
        self._release = threading.Event()
        self.hold_first = hold_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                msg_id = self.headers.get("webhook-id", "")
                with outer.lock:
                    first = not outer.requests
                    outer.requests.append({"id": msg_id, "body": body, "at": time.time()})
                    code = outer.codes.pop(0) if outer.codes else 200
                if first and outer.hold_first:
                    outer.first_arrived.set()
                    outer._release.wait(60)
                    return  # the sender is gone by now; hang up without an answer
                if 200 <= code < 300:
                    with outer.lock:
                        if msg_id not in outer.effects:
                            outer.effects.append(msg_id)
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def release(self) -> None:
        self._release.set()

    def __enter__(self) -> DedupReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
