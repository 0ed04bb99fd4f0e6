"""One execution environment of one function: `python -m broker.functions.local.worker <handler>`.

The local runner (broker/functions/runner.py) starts it with the function's deployed environment
(GetFunctionConfiguration's Environment, plus the emulator's address), so a function's settings
come from the stack as on AWS, not from the runner's own environment. It serves one invocation
at a time, as a Lambda execution environment does: a JSON line on stdin
(`{"event": …, "deadline_ms": …}`) → the handler → a JSON line on the protocol pipe
(`{"ok": true, "result": …}` or `{"ok": false, "error": "…"}`). The runner kills the process
when an invocation outlives the function's timeout, as Lambda kills it.

`<handler>` is the deployed Handler (`broker.functions.egress.handler`: module, dot, attribute).
A function module's `flush_*` hooks (buffered delivery records and counters) run every second
between invocations and once more on SIGTERM.
"""

import importlib
import json
import logging
import os
import signal
import sys
import threading
import time

from broker.functions.local import events

FLUSH_SECONDS = 1.0


def load_handler(path: str):
    module_name, _, attribute = path.rpartition(".")
    module = importlib.import_module(module_name)
    return module, getattr(module, attribute)


def _flushers(module) -> list:
    return [getattr(module, name) for name in dir(module) if name.startswith("flush_")]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    handler_path, function_name = argv[0], argv[1] if len(argv) > 1 else argv[0]
    # The protocol gets its own copy of stdout; whatever the handler prints goes to stderr
    # (the runner's log), never into the protocol.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {function_name} %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    module, handler = load_handler(handler_path)
    flushers = _flushers(module)
    lock = threading.Lock()  # an invocation and a flush never overlap
    stopping = threading.Event()

    def flush() -> None:
        for flusher in flushers:
            try:
                flusher()
            except Exception:
                logging.getLogger(function_name).exception("flush failed")

    def flush_loop() -> None:
        while not stopping.wait(FLUSH_SECONDS):
            with lock:
                flush()

    def on_term(signum, frame):
        stopping.set()
        with lock:
            flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    if flushers:
        threading.Thread(target=flush_loop, name="flush", daemon=True).start()
    proto.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        context = events.LambdaContext(
            function_name,
            deadline=request["deadline_ms"] / 1000.0,
            memory_limit_in_mb=request.get("memory_mb", 512),
        )
        with lock:
            try:
                result = handler(request["event"], context)
                answer = {"ok": True, "result": result}
            except Exception as exc:
                logging.getLogger(function_name).exception("the handler raised")
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        try:
            proto.write(json.dumps(answer, default=str) + "\n")
        except (TypeError, ValueError) as exc:
            proto.write(json.dumps({"ok": False, "error": f"unserialisable result: {exc}"}) + "\n")
    stopping.set()
    with lock:
        flush()
    return 0


if __name__ == "__main__":
    time.tzset()
    sys.exit(main())
