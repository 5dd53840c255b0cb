"""`facesvc serve`'s handle on the pool server process (`app.core.serving.server`).

Standard library only: the serve process imports neither torch nor prometheus_client.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Client
from pathlib import Path

log = logging.getLogger(__name__)


def wait_ready(path: Path, timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Block until the pool server at `path` reports ready (for `facesvc serve`);
    False after `timeout` or once `alive()` says the server has exited."""
    give_up = time.monotonic() + timeout
    while alive() and time.monotonic() < give_up:
        try:
            conn = Client(str(path), family="AF_UNIX")
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.2)
            continue
        with conn:
            while alive() and time.monotonic() < give_up:
                try:
                    if not conn.poll(0.5):
                        continue
                    message = conn.recv()
                except (EOFError, OSError):
                    return False
                if message[0] == "status" and message[1]:
                    return True
        return False
    return False


class Supervisor:
    """`facesvc serve`'s pool server: started, waited for until warm, and started again
    if it dies (its API processes reconnect by themselves)."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.process: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()

    def start(self, timeout: float) -> bool:
        """True once the pool is warm; False if it exited or took longer than `timeout`."""
        self.process = process = self._spawn()
        if not wait_ready(self.socket, timeout, alive=lambda: process.poll() is None):
            self.stop()
            return False
        threading.Thread(target=self._watch, name="pool-supervisor", daemon=True).start()
        return True

    def stop(self) -> None:
        self._stop.set()
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "app.core.serving.server", "--socket", str(self.socket)]
        return subprocess.Popen(command)

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            process = self.process
            if process is None or process.poll() is None:
                continue
            log.error(
                "the inference pool server exited (code %s); starting it again", process.returncode
            )
            if not self._stop.is_set():
                self.process = self._spawn()
