"""bench/http_load.py's arithmetic and its transport-error counting, without our server.

The counting is checked against real sockets on loopback: a port nobody listens on, a
server that closes without answering, one that resets the connection, one that answers
503 with and without Retry-After and a Server-Timing header.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from bench.http_load import ROOT, parse_variant, procs_for, split
from bench.load_client import PEOPLE, Job, Sender, prepare
from bench.load_stats import Tally, percentile_ms, retry_after_ok, server_ms, transport_kind


def test_percentile_is_nearest_rank_in_ms() -> None:
    seconds = [i / 1000 for i in range(100, 0, -1)]  # 1..100 ms, unsorted
    assert percentile_ms(seconds, 50) == pytest.approx(50)
    assert percentile_ms(seconds, 99) == pytest.approx(99)
    assert percentile_ms(seconds, 100) == pytest.approx(100)
    assert percentile_ms([0.25], 99) == pytest.approx(250)
    assert math.isnan(percentile_ms([], 50))


def test_server_timing_reads_the_app_entry() -> None:
    assert server_ms("app;dur=12.5") == 12.5
    assert server_ms('db;dur=3, app;desc="request";dur=7') == 7.0
    assert server_ms("total;dur=5") is None
    assert server_ms("app") is None
    assert server_ms(None) is None


def test_retry_after_must_be_delta_seconds() -> None:
    assert retry_after_ok("1") and retry_after_ok(" 12 ")
    assert not retry_after_ok(None)
    assert not retry_after_ok("soon")
    assert not retry_after_ok("-1")


def test_transport_kinds() -> None:
    reset = httpx.ReadError("boom")
    reset.__cause__ = ConnectionResetError(104, "Connection reset by peer")
    assert transport_kind(reset) == "reset"
    assert transport_kind(httpx.ReadError("eof")) == "read"
    assert transport_kind(httpx.ConnectError("refused")) == "connect"
    assert transport_kind(httpx.ReadTimeout("slow")) == "read_timeout"
    assert transport_kind(httpx.PoolTimeout("full")) == "pool_timeout"
    assert transport_kind(httpx.RemoteProtocolError("closed")) == "protocol"


def test_tallies_merge_across_processes() -> None:
    a, b = Tally(), Tally()
    a.answer(200, 10.0, 10.1, 80.0, True)
    a.answer(200, 10.0, 10.3, 250.0, False)
    a.answer(503, 10.2, 10.205, 2.0, None)
    a.no_retry_after += 1
    b.answer(200, 10.5, 10.7, None, True)
    b.answer(500, 11.0, 11.1, None, None)
    b.failure("reset", 11.0, 12.0)
    b.failure("reset", 11.5, 11.6)
    merged = Tally.merge([a, b])
    summary = merged.summary()
    assert summary["statuses"] == {"200": 3, "500": 1, "503": 1}
    assert summary["transport_errors"] == {"reset": 2}
    assert summary["requests"] == 7
    assert summary["ok"] == 3 and summary["checked"] == 3 and summary["wrong"] == 1
    assert summary["wall_s"] == pytest.approx(2.0)  # 10.0 .. 12.0
    assert summary["ok_per_s"] == pytest.approx(1.5)
    assert summary["ok_p50_ms"] == pytest.approx(200)
    assert summary["ok_max_ms"] == pytest.approx(300)
    assert summary["503_p99_ms"] == pytest.approx(5)
    assert summary["503_without_retry_after"] == 1
    assert summary["server_ok_count"] == 2
    assert summary["server_ok_p99_ms"] == pytest.approx(250)
    assert summary["server_503_p50_ms"] == pytest.approx(2)
    assert Tally.merge([]).summary()["ok_p50_ms"] is None


def test_closed_loop_rate_counts_the_window_only() -> None:
    a, b = Tally(window=(10.0, 12.0)), Tally(window=(10.0, 12.0))
    a.answer(200, 10.0, 11.0, None, True)
    a.answer(200, 11.0, 13.0, None, True)  # answered after the window: in latency, not rate
    b.answer(200, 10.0, 11.5, None, True)
    b.answer(503, 11.0, 11.1, None, None)
    summary = Tally.merge([a, b]).summary()
    assert summary["ok"] == 3 and summary["ok_per_s"] == pytest.approx(1.0)
    assert summary["wall_s"] == pytest.approx(3.0)


def test_processes_split_the_connections() -> None:
    assert split(130, 3) == [44, 43, 43]
    assert sum(split(512, 8)) == 512
    assert [procs_for(n, _args(procs=None)) for n in (1, 32, 64, 65, 512)] == [1, 1, 1, 2, 8]
    assert procs_for(4, _args(procs=8)) == 4  # never more processes than connections


def test_variants() -> None:
    assert parse_variant("new") == ("new", ROOT, {})
    name, root, env = parse_variant("old@/tmp/facesvc-old:A=1,B=x=y")
    assert (name, root, env) == ("old", Path("/tmp/facesvc-old"), {"A": "1", "B": "x=y"})


def test_the_mix_is_checkable() -> None:
    verifies = [prepare("verify", i, "p-") for i in range(8)]
    claims = [_field(r.body, "external_id") for r in verifies]
    assert claims[0] == "p-" + PEOPLE[0]
    assert claims[3] == "p-" + PEOPLE[4]  # one in four claims the next person
    good = {"match": True, "identity": {"external_id": claims[0]}}
    assert verifies[0].check(good)
    assert not verifies[0].check({**good, "match": False})
    assert verifies[3].check({"match": False, "identity": {"external_id": claims[3]}})
    recognize = prepare("recognize", 1, "p-")
    assert recognize.check({"faces": [{"identity": {"external_id": "p-" + PEOPLE[1]}}]})
    assert not recognize.check({"faces": [{"identity": None}]})
    enroll = [prepare("enroll", i, "p-", "tok") for i in (0, 1)]
    assert _field(enroll[0].body, "external_id") != _field(enroll[1].body, "external_id")


# ---------------------------------------------------------------------------------------
# Real sockets.


@pytest.mark.parametrize(
    ("behaviour", "kind"), [("close", "protocol"), ("reset", "reset"), ("nobody", "connect")]
)
def test_transport_failures_are_counted_not_raised(behaviour: str, kind: str) -> None:
    async def scenario() -> Tally:
        async with _server(behaviour) as url, httpx.AsyncClient(base_url=url) as http:
            sender = Sender(_job(url), http)
            for n in range(3):
                assert await sender.send(n) == (None, None)
            return sender.tally

    tally = asyncio.run(scenario())
    assert dict(tally.errors) == {kind: 3}
    assert not tally.statuses


def test_503s_without_retry_after_and_server_time() -> None:
    async def scenario() -> Tally:
        async with _server("503") as url, httpx.AsyncClient(base_url=url) as http:
            sender = Sender(_job(url), http)
            for n in range(4):
                await sender.send(n)
            return sender.tally

    summary = asyncio.run(scenario()).summary()
    assert summary["statuses"] == {"503": 4}
    assert summary["503_without_retry_after"] == 2  # every other answer omits it
    assert summary["server_503_count"] == 4 and summary["server_503_p50_ms"] == 1.5


def _job(url: str) -> Job:
    return Job(url, "verify", 1, 1.0, 0, 1, key="k", timeout=5)


def _field(body: bytes, name: str) -> str:
    head = f'name="{name}"\r\n\r\n'.encode()
    return body.split(head, 1)[1].split(b"\r\n", 1)[0].decode()


def _args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**kw)


@asynccontextmanager
async def _server(behaviour: str) -> AsyncIterator[str]:
    """A loopback server that reads a request and misbehaves as asked."""
    if behaviour == "nobody":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        yield f"http://127.0.0.1:{port}"
        return
    answers = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answers
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(
            (line.split(b":")[1] for line in head.split(b"\r\n")
             if line.lower().startswith(b"content-length")), b"0"
        ))  # fmt: skip
        await reader.readexactly(length)
        if behaviour == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif behaviour == "503":
            answers += 1
            retry = b"Retry-After: 1\r\n" if answers % 2 else b""
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                b"Server-Timing: app;dur=1.5\r\nConnection: close\r\n" + retry + b"\r\n"
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
