"""Start-up of a replica's index on a large Postgres gallery: time and memory.

    python -m bench.replica_start [--faces 1000000] [--database-url URL]
        [--kind flat|hnsw|ivfpq] [--threads 2]

Fills a database of its own (created when missing; default `facesvc_bench_replica` on
the local server) with `--faces` identities of one face each, unless it already holds
them, then times what a replica does at start after loading its model: listen, read the
latest change number, and build the index from `faces` (`IndexFeed.start`, the same
code the lifespan runs). Memory is this process's resident set (VmRSS) before and after,
and its peak (VmHWM). The embeddings are 128-d unit vectors drawn from the default model's
cohort mixture (like real faces; HNSW's graph and IVF-PQ's training depend on them), one
per face. FAISS builds on `--threads` OpenMP threads. Model loading is not included: it
is the same for any gallery.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from dataclasses import replace
from pathlib import Path

import faiss
import psycopg
from sqlalchemy.engine import make_url

from app.core.decision.cohort import CohortMixture
from app.core.store import db
from app.core.store.index_feed import IndexFeed
from app.core.store.index_sync import IndexedSession
from app.core.store.vector_index import GalleryIndex
from app.core.telemetry import Metrics

MODEL = ("bench-model", "1")
DIM = 128
CHUNK = 100_000
MIXTURE = Path("app/core/model/backbones/dlib_resnet_l2_cohort.npz")


def memory_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def ensure_database(url: str) -> None:
    name = make_url(url).database
    admin = make_url(url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    db.upgrade(url)


def fill(url: str, faces: int, model: tuple[str, str] = MODEL) -> None:
    """`faces` identities with one face each, of `model`, unless already there."""
    with psycopg.connect(db.libpq_url(url), autocommit=True) as conn:
        have = conn.execute(
            "SELECT count(*) FROM faces WHERE model_name = %s AND model_version = %s", model
        ).fetchone()
        if have is not None and have[0] == faces:
            print(f"the database already holds {faces:,} faces")
            return
        conn.execute("TRUNCATE identities, faces CASCADE")
        started = time.perf_counter()
        conn.execute("CREATE TEMP TABLE vectors (k int PRIMARY KEY, e bytea)")
        mixture = CohortMixture.load(MIXTURE)
        with conn.cursor() as cur:
            for part, start in enumerate(range(0, faces, CHUNK)):
                size = min(CHUNK, faces - start)
                pool = replace(mixture, samples=size, seed=2000 + part).draw().astype("<f4")
                with cur.copy("COPY vectors (k, e) FROM STDIN") as copy:
                    for i in range(size):
                        copy.write_row((start + i + 1, pool[i].tobytes()))
        for start in range(0, faces, CHUNK):
            stop = min(faces, start + CHUNK)
            conn.execute(
                "WITH people AS ("
                " INSERT INTO identities (id, collection_id, name, metadata, created_at,"
                " updated_at) SELECT gen_random_uuid(), 1, 'p' || g, '{}', now(), now()"
                " FROM generate_series(%s::bigint, %s::bigint) g RETURNING id)"
                " INSERT INTO faces (identity_id, model_name, model_version, dim, embedding,"
                " created_at) SELECT p.id, %s, %s, %s, v.e, now()"
                " FROM (SELECT id, row_number() OVER () AS n FROM people) p"
                " JOIN vectors v ON v.k = p.n + %s",
                (start + 1, stop, model[0], model[1], DIM, start),
            )
        conn.execute("VACUUM ANALYZE faces")
        conn.execute("VACUUM ANALYZE identities")
        print(f"filled {faces:,} faces in {time.perf_counter() - started:.1f} s")


async def start_once(url: str, kind: str) -> None:
    gc.collect()
    before = memory_mib("VmRSS")
    engine = db.create_engine(url)
    sessions = db.create_sessionmaker(engine)
    sessions.configure(sync_session_class=IndexedSession)
    index = GalleryIndex(DIM, kind)  # type: ignore[arg-type]
    feed = IndexFeed(url, sessions, index, MODEL, Metrics())
    started = time.perf_counter()
    await feed.start()
    took = time.perf_counter() - started
    gc.collect()
    after = memory_mib("VmRSS")
    print(
        f"index {kind}: {len(index):,} faces ready in {took:.1f} s; "
        f"resident {before:.0f} -> {after:.0f} MiB (+{after - before:.0f}), "
        f"peak {memory_mib('VmHWM'):.0f} MiB"
    )
    await feed.stop()
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/facesvc_bench_replica",
    )
    parser.add_argument("--kind", choices=["flat", "hnsw", "ivfpq"], default="flat")
    parser.add_argument("--threads", type=int, default=2, help="FAISS OpenMP threads")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    ensure_database(args.database_url)
    fill(args.database_url, args.faces)
    asyncio.run(start_once(args.database_url, args.kind))


if __name__ == "__main__":
    main()
