"""Runs the trainer test scripts in subprocesses and SIGKILLs them at printed markers."""

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


class Script:
    """A running test script whose output lines are collected as they come.

    Args:
        name: the script's file name in tests/training.
        args: its command line arguments.
        env: environment variables added to this process's.
    """

    def __init__(self, name: str, *args, env: dict | None = None):
        self.lines: list[str] = []
        self._ended = False
        self._queue: queue.Queue = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / name), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, marker: str, timeout: float = 120) -> None:
        """Returns once a line equal to `marker` was printed; fails if the script ends first."""
        deadline = time.monotonic() + timeout
        while marker not in self.lines:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"no {marker!r} within {timeout} s:\n{self.output}") from None
            if line is None:
                self._ended = True
                self.process.wait()
                raise AssertionError(
                    f"the script ended (exit {self.process.returncode}) before {marker!r}:\n"
                    f"{self.output}"
                )
            self.lines.append(line)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.finish(timeout=30)

    def finish(self, timeout: float = 120) -> int:
        """Waits for the exit and the last lines; returns the exit status."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running after {timeout} s:\n{self.output}") from None
        while not self._ended:
            line = self._queue.get(timeout=30)
            self._ended = line is None
            if line is not None:
                self.lines.append(line)
        return self.process.returncode

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 now (all held open until all are read)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def script_json(name: str, *args, timeout: float = 300) -> dict:
    """Runs the test script `name` in tests/training to its end; returns its last line's JSON."""
    completed = subprocess.run(
        [sys.executable, str(HERE / name), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])
