"""What crossing a process costs: a job and its answer over the pool server's kind of
connection, and the aligned chips of a result through shared memory.

    python -m bench.transport
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from multiprocessing.connection import Client, Listener

import numpy as np

from app.core.serving.shm import ShmArray

N = 2000


def main() -> None:
    path = os.path.join(tempfile.mkdtemp(), "rt.sock")
    listener = Listener(path, family="AF_UNIX")

    def echo() -> None:
        conn = listener.accept()
        while (message := conn.recv()) is not None:
            conn.send(("result", message[1], np.zeros(128, np.float32), None, {"detect": 0.1}))

    threading.Thread(target=echo, daemon=True).start()
    conn = Client(path, family="AF_UNIX")
    data = os.urandom(30_000)  # a 250x250 JPEG is 15-30 kB
    start = time.perf_counter()
    for i in range(N):
        conn.send(("job", i, "detect", data, 1.0))
        conn.recv()
    print(f"round trip, 30 kB job + result: {(time.perf_counter() - start) / N * 1e6:.0f} us")
    conn.send(None)
    chips = np.zeros((2, 150, 150, 3), np.uint8)  # two faces (dlib-resnet-v1 chips)
    start = time.perf_counter()
    for _ in range(N):
        ShmArray.put(chips).take()
    took = (time.perf_counter() - start) / N * 1e6
    print(f"shared memory put + take of 2 chips ({chips.nbytes // 1000} kB): {took:.0f} us")


if __name__ == "__main__":
    main()
