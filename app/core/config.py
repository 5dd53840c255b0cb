"""All settings, read from `FACESVC_*` environment variables or a `.env` file."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from platformdirs import user_cache_dir, user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

D = TypeVar("D")


def _default_database_url() -> str:
    return f"sqlite:///{Path(user_data_dir('facesvc')) / 'facesvc.db'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACESVC_", env_file=".env", extra="ignore")

    # --- decoding limits (checked before full decode) ---
    max_image_bytes: int = Field(10_000_000, gt=0, description="Largest accepted upload.")
    max_image_pixels: int = Field(
        25_000_000,
        gt=0,
        description="Largest accepted width*height (a 24 MP camera photo fits; 6000x6000 "
        "does not), checked from the header before any pixel is decoded.",
    )
    decode_pixels_in_flight: int = Field(
        25_000_000,
        gt=0,
        description="Pixels being decoded at once per process; a decode that does not fit "
        "waits (one image larger than this still runs, alone).",
    )

    # --- detection ---
    min_face_size: int = Field(20, gt=0, description="Smallest face side in pixels (MTCNN).")
    detection_threshold: float = Field(
        0.9, ge=0.0, le=1.0, description="Minimum MTCNN face probability."
    )
    detection_upsample_below: int = Field(
        200, ge=0, description="Images whose short side is below this are upsampled first."
    )
    detection_max_side: int = Field(
        1600, gt=0, description="Detection runs on a copy downscaled to this long side."
    )

    detect_impl: Literal["batched", "facenet"] = Field(
        "batched",
        description="MTCNN implementation: 'batched' runs each stage once over a whole "
        "batch of any image sizes (app/core/model/mtcnn_batched.py); 'facenet' is "
        "facenet-pytorch's own detect. Same lfw_dev/orl figures (docs/performance.md).",
    )
    decode_on_device: bool | None = Field(
        None,
        description="Decode batches of JPEGs with torchvision's decoder on the inference "
        "device (nvjpeg on CUDA; app/core/model/gpu_decode.py); None: on when the device is CUDA.",
    )
    detector: Literal["mtcnn", "scrfd"] = Field(
        "mtcnn",
        description="Face detector: MTCNN (bundled) or SCRFD from FACESVC_SCRFD_ONNX.",
    )
    scrfd_onnx: Path | None = Field(
        None, description="SCRFD detector in ONNX with landmarks (operator-supplied)."
    )
    scrfd_input_size: int = Field(
        640, ge=32, multiple_of=32, description="Square input side SCRFD runs at."
    )
    landmarks: Literal["mtcnn", "dlib5"] = Field(
        "mtcnn", description="Landmark source for alignment (dlib5 needs dlib-bin)."
    )

    # --- embedding ---
    model: str = Field("dlib-resnet-v1", description="Default embedding backbone.")
    device: str = Field("auto", description="'auto' (CUDA when present), 'cpu' or 'cuda[:N]'.")
    half_precision: bool = Field(False, description="fp16 inference on GPU.")
    torch_threads: int = Field(
        0,
        ge=0,
        description="CPU threads for torch; 0: one per inference worker process on the "
        "CPU (as many processes as cores), torch's default elsewhere.",
    )
    flip_fusion: bool = Field(
        True, description="Average the embeddings of a face and its mirror image."
    )
    normalise_embeddings: bool = Field(
        True,
        description="L2-normalise each (flip-fused) embedding: the model version "
        "<version>+l2, with its own thresholds. Off: the un-normalised version, for a "
        "gallery enrolled before it was the default until `facesvc reembed` moves it.",
    )
    cache_dir: Path = Field(
        default_factory=lambda: Path(user_cache_dir("facesvc")),
        description="Converted weights and evaluation caches.",
    )
    facenet_weights: Path | None = Field(
        None, description="InceptionResnetV1 VGGFace2 state dict (20180402-114759-vggface2.pt)."
    )
    arcface_onnx: Path | None = Field(
        None,
        description="ArcFace-family recognizer in ONNX for `arcface-onnx`; an optional "
        "sidecar <stem>.json beside it sets preprocessing and thresholds.",
    )
    projection_head: Path | None = Field(
        None,
        description="Head from `facesvc train-triplet`: serves the model variant "
        "<model>+head, whose embeddings are never mixed with the base model's.",
    )
    verifier: Path | None = Field(
        None,
        description="Pair verifier from `facesvc train-verifier`: /v1/verify and "
        "/v1/compare also return its `probability`.",
    )
    identify_score: Literal["auto", "distance", "cohort"] = Field(
        "auto",
        description="1:N decides on the nearest distance, or on it divided by the probe's "
        "mean distance to its k nearest cohort faces. `auto`: with the model version's "
        "built-in cohort where it has one (the default model does) and the gallery has at "
        "least its min_gallery people, else on the distance; `cohort`: with an operator's "
        "cohort_file and cohort_tau; `distance`: never normalised.",
    )
    cohort_file: Path | None = Field(
        None, description="Cohort embeddings (.npy) from `facesvc calibrate --save-cohort`."
    )
    cohort_k: int = Field(20, ge=1, description="Nearest cohort faces averaged per probe.")
    cohort_tau: float | None = Field(
        None,
        gt=0,
        description="Default 1:N threshold on the cohort-normalised score "
        "(`facesvc calibrate --study-normalisation` prints it).",
    )

    # --- storage / service ---
    database_url: str = Field(
        default_factory=_default_database_url,
        description="SQLAlchemy URL: sqlite:///PATH (embedded) or postgresql+psycopg://...",
    )
    auto_migrate: bool | None = Field(
        None,
        description="Apply database migrations on start; unset means on for SQLite only.",
    )
    auth_mode: Literal["keys", "open"] = Field(
        "keys", description="'keys' requires X-API-Key; 'open' is for local development only."
    )
    keep_thumbnails: bool = Field(
        False, description="Store the aligned face crop (JPEG) of each enrolled face."
    )
    index_kind: Literal["flat", "hnsw", "ivfpq", "auto"] = Field(
        "flat",
        description="FAISS index: exact 'flat' L2, approximate 'hnsw', compressed 'ivfpq' "
        "(tens of millions), or 'auto': chosen by the gallery's size and rebuilt in the "
        "background when it grows or shrinks past a threshold (docs/deploy.md).",
    )
    index_auto_hnsw_from: int = Field(
        200_000,
        ge=1,
        description="With FACESVC_INDEX_KIND=auto: HNSW from this many faces, exact below "
        "(back to exact below half of it).",
    )
    index_auto_ivfpq_from: int = Field(
        1_000_000,
        ge=1,
        description="With FACESVC_INDEX_KIND=auto: IVF-PQ from this many faces, HNSW below "
        "(back to HNSW below half of it). At 1M IVF-PQ agreed with exact search on every "
        "open-set decision, at a third of HNSW's latency and half its memory (docs/deploy.md).",
    )
    ivfpq_nprobe: int = Field(
        32, ge=1, description="IVF-PQ: inverted lists scanned per search (docs/deploy.md)."
    )
    hnsw_m: int = Field(32, ge=4, le=256, description="HNSW graph degree.")
    hnsw_ef_search: int = Field(
        384, ge=1, description="HNSW search breadth: recall@1 1.0 at 1M, p50 2.7 ms."
    )
    index_ready_lag_s: float = Field(
        2.0,
        gt=0.0,
        description="Postgres: /readyz says not ready while the index's oldest unapplied "
        "change is older than this (docs/deploy.md).",
    )
    threshold_min: float = Field(0.0, ge=0.0, description="Smallest per-request threshold.")
    threshold_max: float = Field(4.0, gt=0.0, description="Largest per-request threshold.")
    default_top_k: int = Field(1, ge=1, description="Candidates per face in /v1/recognize.")
    max_top_k: int = Field(50, ge=1, description="Largest accepted top_k.")
    max_body_bytes: int | None = Field(
        None,
        gt=0,
        description="Largest request body; unset means room for two images in base64.",
    )
    # --- inference worker pool (app/core/serving, docs/architecture.md) ---
    inference_backend: Literal["auto", "process", "thread"] = Field(
        "auto",
        description="Where inference runs: 'process' (worker processes, one pipeline "
        "each), 'thread' (worker threads in the API process); 'auto': threads when the "
        "app is handed a loaded pipeline (tests), processes otherwise.",
    )
    inference_pool_socket: Path | None = Field(
        None,
        description="Unix socket of a shared pool server; set by `facesvc serve` for its "
        "API processes. Unset: the app starts its own pool in its lifespan.",
    )
    inference_workers_per_device: int = Field(
        0,
        ge=0,
        description="Workers (threads or processes) per device; 0: one per GPU, and on "
        "the CPU the number of cores over torch_threads (1 when torch_threads is 0).",
    )
    inference_max_batch: int = Field(
        0,
        ge=0,
        description="Most jobs in one batch; 1 switches batching off; 0: by device, "
        "32 on the CPU (throughput flat beyond, bench/embed.py), 256 on a GPU.",
    )
    inference_max_detect_batch: int = Field(
        0,
        ge=0,
        description="Most images in one detection batch (also capped by inference_max_batch); "
        "0: by device, 8 on the CPU (MTCNN gains up to 8-16 same-size images, "
        "bench/detect.py), 32 on a GPU.",
    )
    inference_max_wait_ms: float = Field(
        10.0, ge=0.0, description="Longest an embedding job waits for its batch to fill."
    )
    admission_window_ms: float = Field(
        1000.0,
        gt=0.0,
        description="Image requests are admitted while those in progress finish within "
        "this at the measured rate (and half the deadline); more get 503 at once.",
    )
    inference_worker_nice: int = Field(
        5,
        ge=0,
        le=19,
        description="Niceness added to inference worker processes, so that the API "
        "processes (admission, rejection, answers: little work each) are never starved "
        "of a CPU by them (measured, docs/performance.md).",
    )
    keep_alive_s: int = Field(
        65,
        gt=0,
        description="Idle keep-alive connections are closed after this. Longer than the "
        "clients' own (httpx 5 s, load balancers 60 s), so a client never sends on a "
        "connection the server is closing (a reset).",
    )
    inference_queue_size: int = Field(
        64, ge=1, description="Requests admitted to the pool at once; more get 503."
    )
    inference_deadline_ms: float = Field(
        10_000.0,
        gt=0.0,
        description="A request not answered this long after it arrived gets 503 `timeout`.",
    )
    db_pool_size: int = Field(
        10,
        ge=1,
        description="Database connections per API process. Held only for a request's "
        "queries, never while it waits for inference.",
    )
    db_pool_timeout_s: float = Field(
        5.0, gt=0, description="A request waiting this long for a connection gets 503."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty disables CORS."
    )
    host: str = Field("127.0.0.1", description="`facesvc serve` bind address.")
    port: int = Field(8000, ge=1, le=65535, description="`facesvc serve` port.")
    workers: int = Field(1, ge=1, description="`facesvc serve` worker processes.")
    log_level: str = Field("info", description="Log level of the service.")
    # --- logs and audit (docs/service.md, "Logs and audit") ---
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text or as one JSON object per line; both carry the "
        "ISO 8601 UTC time, level, logger and request id.",
    )
    record_decisions: bool = Field(
        False,
        description="Record each verify/recognize decision (key, result, identity, "
        "distance, threshold; never an image or embedding) for door-access logs.",
    )
    decision_retention_days: float = Field(
        30.0, gt=0, description="Recorded decisions older than this are deleted."
    )
    # --- operational surfaces (docs/security.md) ---
    docs: Literal["public", "key", "off"] = Field(
        "key",
        description="/docs, /redoc and /openapi.json: for anyone, for any valid API key "
        "(in open mode that is anyone), or not served.",
    )
    metrics: Literal["public", "key", "off"] = Field(
        "key",
        description="/metrics (it shows the gallery size): for anyone, for a key with the "
        "`metrics` (or `admin`) scope (in open mode anyone), or not served.",
    )

    console: bool = Field(
        True,
        description="Serve the operator's console at /console (static pages; each of "
        "their API calls needs a key).",
    )

    # --- style transfer jobs (app/domains/jobs, app/core/style) ---
    stylize_workers: int = Field(
        1,
        ge=0,
        description="Style-transfer jobs run at once (own threads, not the "
        "inference pool); 0 runs none (jobs stay queued).",
    )
    stylize_max_steps: int = Field(500, ge=1, description="Most optimisation steps per job.")
    stylize_default_steps: int = Field(100, ge=1, description="Steps when a job names none.")
    stylize_max_side: int = Field(1024, ge=16, description="Largest accepted max_side.")
    stylize_default_side: int = Field(256, ge=16, description="Output long side by default.")
    stylize_max_queued_per_key: int = Field(
        4, ge=1, description="Queued or running jobs one API key may have; more get 429."
    )
    stylize_storage: Literal["disk", "database"] = Field(
        "disk", description="Where result PNGs are kept."
    )
    stylize_results_dir: Path = Field(
        default_factory=lambda: Path(user_data_dir("facesvc")) / "stylize",
        description="Result PNGs when stylize_storage is 'disk'.",
    )
    stylize_retention_hours: float = Field(
        24.0, gt=0, description="Finished jobs (record and result) are deleted after this."
    )
    stylize_on_restart: Literal["rerun", "fail"] = Field(
        "rerun", description="What happens to a job that was running when the process died."
    )
    stylize_max_attempts: int = Field(
        2, ge=1, description="Starts a job gets before a restart marks it failed."
    )
    stylize_stale_after_s: float = Field(
        60.0,
        ge=0,
        description="A running job whose process has not written for this long was "
        "interrupted (process died): it is re-run or failed.",
    )
    stylize_gram_normalisation: Literal["nhwc", "gatys", "ng"] = Field(
        "nhwc",
        description="Style cost per layer: ||G(S)-G(G)||^2 times 1/(nH nW nC) ('nhwc'), "
        "1/(4 nC^2 (nH nW)^2) ('gatys') or 1/(2 nH nW nC)^2 ('ng').",
    )
    stylize_torchvision_vgg19: Path | None = Field(
        None,
        description="torchvision's vgg19-dcbb9e9d.pth for network 'vgg19-torchvision' "
        "(default: the torch hub cache).",
    )

    @property
    def body_limit(self) -> int:
        """Request body limit: two images, base64-encoded, plus form overhead."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return 2 * (self.max_image_bytes * 4 // 3 + 4) + 64 * 1024

    @property
    def migrate_on_start(self) -> bool:
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.database_url.startswith("sqlite")


def settings_subset(cls: type[D], settings: Settings, **parts: Any) -> D:
    """The options dataclass `cls` whose fields are the settings of the same names
    (FACESVC_<NAME>); `parts` gives the fields that are not settings (nested options)."""
    names = {field.name for field in dataclasses.fields(cast(Any, cls))} - parts.keys()
    return cls(**{name: getattr(settings, name) for name in names}, **parts)
