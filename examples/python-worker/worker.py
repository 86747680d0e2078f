#!/usr/bin/env python3
"""A DTP worker in Python, standard library only: leases tasks of external types over HTTP,
heartbeats while each runs, and completes or fails it. A 409 (the lease was lost: canceled,
expired, released) means stop: another worker may own the task now. On SIGTERM or Ctrl-C
it stops leasing and releases what it still holds.

    DTP_URL=http://127.0.0.1:8080 python3 worker.py --type resize-image
"""

import argparse
import json
import os
import signal
import socket
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor


class LeaseLost(Exception):
    """The lease is no longer this worker's; stop working on the task."""


class Dtp:
    def __init__(self, url, token=None):
        self.url = url.rstrip("/")
        self.token = token

    def call(self, path, body, timeout=10):
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), method="POST",
            headers={"content-type": "application/json"})
        if self.token:
            request.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                text = answer.read()
                return json.loads(text) if text else None
        except urllib.error.HTTPError as error:
            detail = json.loads(error.read() or b"{}")
            if error.code == 409 and detail.get("code") == "LEASE_LOST":
                raise LeaseLost(detail.get("reason")) from None
            raise RuntimeError(f"{path}: HTTP {error.code} {detail}") from None


def run_task(task):
    """The work: replace with yours. Raise to fail the attempt (it is retried). To try the
    worker out, a payload may ask it to fail ({"fail": "why"}) or to hang on its first
    attempt ({"hangFirstAttempt": true}), as a crashed or stuck worker would."""
    payload = task["payload"] if isinstance(task["payload"], dict) else {}
    payload = payload.get("payload", payload) if "webTaskId" in payload else payload  # via TaskPilot
    if payload.get("fail"):
        raise RuntimeError(f"asked to fail: {payload['fail']}")
    if payload.get("hangFirstAttempt") and task["attempt"] == 1:
        threading.Event().wait()
    return {"handledBy": "python", "taskId": task["taskId"], "attempt": task["attempt"]}


def handle(dtp, lease, held, lease_s):
    token, done = lease["leaseToken"], threading.Event()

    def heartbeat():
        while not done.wait(lease_s / 3):
            try:
                dtp.call(f"/leases/{token}/heartbeat", {})
            except LeaseLost:
                return done.set()  # the work goes on, but its outcome will be refused
            except Exception as error:  # noqa: BLE001 - a failed heartbeat is retried
                print(f"worker: heartbeat failed: {error}", flush=True)

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    try:
        result = run_task(lease)
        dtp.call(f"/leases/{token}/complete", {"result": result})
        print(f"worker: task {lease['taskId']} completed", flush=True)
    except LeaseLost as lost:
        print(f"worker: task {lease['taskId']} lease lost ({lost}); outcome dropped", flush=True)
    except Exception as error:  # noqa: BLE001 - any failure of the work fails the attempt
        try:
            dtp.call(f"/leases/{token}/fail", {"error": str(error)[:4096]})
            print(f"worker: task {lease['taskId']} failed: {error}", flush=True)
        except LeaseLost:
            pass
    finally:
        done.set()
        held.discard(token)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--type", action="append", required=True, help="external type(s) to lease")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--lease-s", type=float, default=30, help="the types' lease_ms, in seconds")
    args = parser.parse_args()
    dtp = Dtp(os.environ.get("DTP_URL", "http://127.0.0.1:8080"), os.environ.get("DTP_TOKEN"))
    worker_id = f"py-{socket.gethostname()}-{os.getpid()}"
    stopping, held = threading.Event(), set()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    slots = threading.Semaphore(args.concurrency)
    print(f"worker: {worker_id} leasing {', '.join(args.type)}", flush=True)
    with ThreadPoolExecutor(args.concurrency) as pool:
        while not stopping.is_set():
            slots.acquire()
            try:
                leases = dtp.call("/leases", {"workerId": worker_id, "types": args.type,
                                              "max": 1, "waitMs": 2000}, timeout=15)["leases"]
            except Exception as error:  # noqa: BLE001 - the engine may be restarting
                print(f"worker: lease request failed: {error}", flush=True)
                slots.release()
                stopping.wait(1)
                continue
            if not leases:
                slots.release()
            for lease in leases:
                held.add(lease["leaseToken"])
                pool.submit(lambda l=lease: (handle(dtp, l, held, args.lease_s), slots.release()))
        for token in list(held):  # shutting down: give back what is still running
            try:
                dtp.call(f"/leases/{token}/release", {})
            except Exception:  # noqa: BLE001 - it is rescued when its lease expires
                pass
    print("worker: stopped", flush=True)


if __name__ == "__main__":
    main()
