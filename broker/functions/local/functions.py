"""The deployed functions as the local runner runs them: configuration from the emulator, and
a pool of execution environments (worker processes, broker/functions/local/worker.py) each.

On AWS a function's settings are its deployed Environment and Timeout; here too: the runner
reads GetFunctionConfiguration and starts each worker with exactly that environment (plus the
emulator's address and credentials, which on AWS come from the function's role). A worker
serves one invocation at a time; one still running when the function's Timeout passes is
killed with its process group, as Lambda kills it, and a fresh worker takes the next one.
"""

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("broker.functions.runner")

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT = 30.0


class InvocationError(Exception):
    """The invocation failed as Lambda would report it: the handler raised, or timed out."""


class InvocationTimeout(InvocationError):
    pass


@dataclass(frozen=True)
class FunctionConfig:
    arn: str
    name: str
    handler: str
    timeout: int
    memory: int
    role: str
    environment: dict = field(default_factory=dict, hash=False, compare=True)

    @classmethod
    def read(cls, lambda_client, function: str) -> "FunctionConfig":
        c = lambda_client.get_function_configuration(FunctionName=function)
        return cls(
            arn=c["FunctionArn"],
            name=c["FunctionName"],
            handler=c["Handler"],
            timeout=int(c.get("Timeout") or 3),
            memory=int(c.get("MemorySize") or 128),
            role=c.get("Role", ""),
            # moto hands back a Number parameter's value as a number; AWS's are strings.
            environment={
                k: str(v) for k, v in ((c.get("Environment") or {}).get("Variables") or {}).items()
            },
        )


class _Worker:
    def __init__(self, config: FunctionConfig, env: dict, log_file):
        self.config = config
        # The handler and name are the deployed function's (our own stack), run as arguments.
        self.proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "broker.functions.local.worker", config.handler, config.name],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            start_new_session=True,
        )
        if self._read(START_TIMEOUT) is None:
            self.kill()
            raise InvocationError(f"{config.name}: the execution environment did not start")

    def _read(self, timeout: float) -> dict | None:
        ready, _, _ = select.select([self.proc.stdout], [], [], max(timeout, 0))
        if not ready:
            return None
        line = self.proc.stdout.readline()
        if not line:
            raise InvocationError(f"{self.config.name}: the execution environment exited")
        return json.loads(line)

    def invoke(self, event: dict) -> object:
        started = time.time()
        deadline = started + self.config.timeout
        request = {
            "event": event,
            "deadline_ms": int(deadline * 1000),
            "memory_mb": self.config.memory,
        }
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self._read(deadline - time.time())
        if answer is None:
            self.kill()
            raise InvocationTimeout(
                f"{self.config.name}: Task timed out after {self.config.timeout}.00 seconds"
            )
        if not answer.get("ok"):
            raise InvocationError(answer.get("error") or "the function failed")
        return answer.get("result")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the worker flushes its buffers first
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        except ProcessLookupError:
            pass


class FunctionHost:
    """The execution environments of one deployed function, started on demand and reused."""

    def __init__(self, config: FunctionConfig, *, base_env: dict, log_file, max_workers: int):
        self.config = config
        self.env = {**base_env, **config.environment}
        self.log_file = log_file
        self.max_workers = max_workers
        self._idle: list[_Worker] = []
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False

    def _take(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise InvocationError(f"{self.config.name}: the runner is stopping")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        return worker
                    self._count -= 1
                if self._count < self.max_workers:
                    self._count += 1
                    break
                self._cond.wait(1)
        try:
            return _Worker(self.config, self.env, self.log_file)
        except Exception:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _give_back(self, worker: _Worker) -> None:
        with self._cond:
            if worker.alive() and not self._closed:
                self._idle.append(worker)
            else:
                self._count -= 1
                if not self._closed:
                    worker.stop(1)
            self._cond.notify()

    def invoke(self, event: dict) -> object:
        worker = self._take()
        try:
            return worker.invoke(event)
        finally:
            self._give_back(worker)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for worker in idle:
            worker.stop()
