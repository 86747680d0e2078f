#!/usr/bin/env python3
"""A receiver for DTP's HTTP-target tasks, using only the standard library.

Every request is checked as the Standard Webhooks scheme asks: the signature over
"<webhook-id>.<webhook-timestamp>.<body>" with the shared secret, and a timestamp no older
than five minutes. A task delivered again under the same Idempotency-Key (a retry after a
lost answer) is acknowledged without doing the work twice. The JSON answer becomes the
task's result.

    SEND_EMAIL_SECRET=... python3 receiver.py --port 9000
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 5 * 60


def signing_key(secret):
    """Standard Webhooks secrets look like whsec_<base64>; others sign with their own bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode()


def signature_is_valid(key, headers, body):
    webhook_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (webhook_id and timestamp.isdigit() and signatures):
        return False
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # The header may carry several space-separated signatures (during a secret rotation).
    return any(
        hmac.compare_digest(candidate.partition(",")[2], expected)
        for candidate in signatures.split()
        if candidate.startswith("v1,")
    )


class Receiver(BaseHTTPRequestHandler):
    key = b""
    done = {}
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if not signature_is_valid(self.key, self.headers, body):
            return self.answer(401, {"error": "bad or missing signature"})
        task = json.loads(body)
        key = self.headers.get("idempotency-key")
        with self.lock:
            if key in self.done:
                return self.answer(200, self.done[key])
            # The work itself goes here; an exception would answer 500 and DTP would retry.
            result = {"delivered": True, "taskId": task["taskId"], "attempt": task["attempt"]}
            self.done[key] = result
        self.answer(200, result)

    do_PUT = do_POST

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        sys.stderr.write("receiver: " + format % args + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--secret-env", default="SEND_EMAIL_SECRET")
    args = parser.parse_args()
    secret = os.environ.get(args.secret_env)
    if not secret:
        sys.exit(f"receiver: set {args.secret_env} to the secret named by signing_secret_env")
    Receiver.key = signing_key(secret)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Receiver)
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
