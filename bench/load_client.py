"""One client process of bench/http_load.py: asyncio + httpx over keep-alive connections.

The parent starts several of these (one Python process saturates near 128 connections),
hands each a `Job`, waits until all are ready, then sends them one common start time. Each
runs closed-loop clients (`rate` None: every client sends its next request as soon as the
last is answered) or an open loop at `rate` requests/s, and sends its `Tally` back.

The request mix is built so that every successful answer can be checked:
- verify: three in four claim the probe's own identity (match true), one in four claims
  the next person's (match false); the answer must name the claimed identity;
- compare: the person's two photos (match true), or one in four against the next
  person's second photo (false);
- recognize: the probe's second photo must be recognised as that person;
- enroll: a new identity per request (a fresh external_id), 201 naming it.
Bodies are encoded once per variant, not per request, so the client spends its CPU on
HTTP rather than on multipart encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import httpx

from bench.load_stats import SUCCESS, Tally, retry_after_ok, server_ms, transport_kind
from tests.support.factories import people, photo

PEOPLE = people()
BOUNDARY = "facesvc-bench-7d1f0c"
ERROR_PAUSE_S = 0.1  # a closed-loop client pauses after a transport error, not spin


@dataclass(frozen=True)
class Job:
    url: str
    route: str  # verify | recognize | compare | enroll
    clients: int  # connections (closed loop: concurrent clients) in this process
    duration: float
    index: int  # this process's number, 0..procs-1: interleaves the request mix
    procs: int
    key: str | None = None
    prefix: str = "bench-"  # external_id prefix of the enrolled people
    rate: float | None = None  # open loop: requests/s from this process
    requests: int | None = None  # most requests from this process
    timeout: float = 60.0
    backoff: bool = False  # closed loop: sleep Retry-After after a 503
    nice: int = 0  # the clients stand in for other machines: they yield the CPU


@dataclass(frozen=True)
class Prepared:
    path: str
    headers: dict[str, str]
    body: bytes
    check: Callable[[Any], bool]


def multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[str, bytes]:
    parts = []
    for name, value in fields.items():
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(head.encode() + value.encode() + b"\r\n")
    for name, data in files.items():
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{name}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    return f"multipart/form-data; boundary={BOUNDARY}", body


def prepare(route: str, i: int, prefix: str, token: str = "") -> Prepared:
    """The i-th request of `route`'s mix (see the module docstring)."""
    person, other = PEOPLE[i % len(PEOPLE)], PEOPLE[(i + 1) % len(PEOPLE)]
    same = i % 4 != 3
    if route == "verify":
        claim = prefix + (person if same else other)
        ctype, body = multipart({"external_id": claim}, {"image": photo(person, 2)})
        return Prepared(
            "/v1/verify",
            {"content-type": ctype},
            body,
            lambda b: b["match"] is same and b["identity"]["external_id"] == claim,
        )
    if route == "compare":
        second = photo(person if same else other, 2)
        ctype, body = multipart({}, {"image_a": photo(person, 1), "image_b": second})
        return Prepared("/v1/compare", {"content-type": ctype}, body, lambda b: b["match"] is same)
    if route == "recognize":
        ctype, body = multipart({}, {"image": photo(person, 2)})

        def named(b: Any) -> bool:
            identity = b["faces"][0]["identity"]
            return identity is not None and identity["external_id"] == prefix + person

        return Prepared("/v1/recognize", {"content-type": ctype}, body, named)
    if route == "enroll":
        external_id = f"{prefix}load-{token}-{i}"
        ctype, body = multipart(
            {"name": person, "external_id": external_id}, {"image": photo(person, 1)}
        )
        return Prepared(
            "/v1/identities",
            {"content-type": ctype},
            body,
            lambda b: b["identity"]["external_id"] == external_id,
        )
    raise ValueError(f"unknown route {route!r}")


class Sender:
    """Sends prepared requests and tallies what comes back; never raises on transport."""

    def __init__(self, job: Job, http: httpx.AsyncClient) -> None:
        self.job, self.http, self.tally = job, http, Tally()
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        variants = 4 * len(PEOPLE)  # every person, matching and not
        self.cache = (
            None
            if job.route == "enroll"
            else [prepare(job.route, i, job.prefix) for i in range(variants)]
        )

    def request(self, n: int) -> Prepared:
        i = n * self.job.procs + self.job.index
        if self.cache is None:
            return prepare(self.job.route, i, self.job.prefix, self.token)
        return self.cache[i % len(self.cache)]

    async def send(self, n: int) -> tuple[int | None, str | None]:
        """(status, Retry-After) of the n-th request, or (None, None) on a transport error."""
        prepared = self.request(n)
        headers = dict(prepared.headers)
        if self.job.key:
            headers["x-api-key"] = self.job.key
        sent = time.monotonic()
        try:
            response = await self.http.post(prepared.path, content=prepared.body, headers=headers)
        except httpx.TransportError as error:
            self.tally.failure(transport_kind(error), sent, time.monotonic())
            return None, None
        done = time.monotonic()
        status = response.status_code
        right = None
        if status in SUCCESS:
            try:
                right = bool(prepared.check(response.json()))
            except (ValueError, KeyError, IndexError, TypeError):
                right = False
        retry_after = response.headers.get("retry-after")
        if status == 503 and not retry_after_ok(retry_after):
            self.tally.no_retry_after += 1
        self.tally.answer(
            status, sent, done, server_ms(response.headers.get("server-timing")), right
        )
        return status, retry_after


async def closed_loop(sender: Sender, start: float) -> None:
    job, issued = sender.job, 0
    end = start + job.duration
    sender.tally.window = (start, end)  # requests still out at the end finish, uncounted/s
    limit = job.requests if job.requests is not None else 1 << 62

    async def client() -> None:
        nonlocal issued
        while time.monotonic() < end and issued < limit:
            n, issued = issued, issued + 1
            status, retry_after = await sender.send(n)
            if status is None:
                await asyncio.sleep(ERROR_PAUSE_S)
            elif status == 503 and job.backoff and retry_after_ok(retry_after):
                await asyncio.sleep(min(float(retry_after or 0), end - time.monotonic()))

    await asyncio.sleep(max(0.0, start - time.monotonic()))
    await asyncio.gather(*(client() for _ in range(job.clients)))


async def open_loop(sender: Sender, start: float) -> None:
    """Send at job.rate on schedule, whatever is still in flight (up to job.clients)."""
    job = sender.job
    assert job.rate
    end = start + job.duration
    pending: set[asyncio.Task[tuple[int | None, str | None]]] = set()
    n = 0
    while (due := start + n / job.rate) < end:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        if len(pending) >= job.clients:  # the generator's own bound: counted, not sent
            sender.tally.failure("client_backlog", due, due)
        else:
            task = asyncio.create_task(sender.send(n))
            pending.add(task)
            task.add_done_callback(pending.discard)
        n += 1
    if pending:
        await asyncio.wait(pending, timeout=job.timeout)


async def run(job: Job, start_wall: float) -> Tally:
    limits = httpx.Limits(max_connections=job.clients, max_keepalive_connections=job.clients)
    timeout = httpx.Timeout(job.timeout, pool=job.timeout)
    async with httpx.AsyncClient(base_url=job.url, limits=limits, timeout=timeout) as http:
        sender = Sender(job, http)
        start = time.monotonic() + (start_wall - time.time())
        await (open_loop if job.rate else closed_loop)(sender, start)
        return sender.tally


def child(conn: Connection, job_json: str) -> None:
    """Entry point of a spawned client process: ready, wait for the start time, run, report."""
    job = Job(**json.loads(job_json))
    os.nice(job.nice)
    with contextlib.suppress(ImportError):  # uvloop where installed: less client CPU
        import uvloop

        uvloop.install()
    conn.send("ready")
    start_wall = conn.recv()
    conn.send(asyncio.run(run(job, start_wall)))
    conn.close()
