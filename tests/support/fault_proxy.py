"""A fault-injecting proxy in front of an OpenAI-compatible server, run as its own process (stdlib only):

    python tests/support/fault_proxy.py --upstream http://127.0.0.1:8000 [--fail 429,500] [--die-at N]

It prints its port, then answers the first completions requests with the `--fail` statuses (their error message
echoes the request's Authorization header, as a careless server might), forwards the rest, and with `--die-at N`
kills itself (SIGKILL, mid-request) when completions request N + 1 arrives. Other requests (the model list) pass.
"""

import argparse
import json
import os
import signal
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handler(upstream: str, fail: list[int], die_at: int | None):
    lock, seen = threading.Lock(), [0]

    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *_):  # quiet
            pass

        def do_GET(self):
            self._forward(None)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.endswith("/completions"):
                with lock:
                    seen[0] += 1
                    n = seen[0]
                if n <= len(fail):
                    message = f"injected {fail[n - 1]}; the request had {self.headers.get('Authorization')}"
                    return self._answer(fail[n - 1], json.dumps({"error": {"message": message}}).encode())
                if die_at is not None and n > die_at:
                    os.kill(os.getpid(), signal.SIGKILL)  # a server that dies with this request in flight
            self._forward(body)

        def _forward(self, body):
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
            request = urllib.request.Request(upstream + self.path, data=body, headers=headers, method=self.command)
            try:
                with urllib.request.urlopen(request, timeout=300) as r:
                    self._answer(r.status, r.read())
            except urllib.error.HTTPError as e:
                self._answer(e.code, e.read())

        def _answer(self, status: int, payload: bytes):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Proxy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True, help="the server's root, e.g. http://127.0.0.1:8000")
    parser.add_argument("--fail", default="", help="statuses answered to the first completions requests, e.g. 429,500")
    parser.add_argument("--die-at", type=int, default=None, help="forward this many completions requests, then die")
    args = parser.parse_args()
    fail = [int(s) for s in args.fail.split(",") if s]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(args.upstream.rstrip("/"), fail, args.die_at))
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
