"""Where things live: the workspace (runs, caches), the data roots datasets may be opened from, and
whether a web user may add data roots of their own (PATCHLENS_ROOTS_FROM_UI)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from core.errors import InputError, PathNotAllowedError

PROJECT_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_DIR / "data"
SAMPLE_DATASET = DATA_DIR / "sample"
MODELS_DIR = PROJECT_DIR / "models"
BASELINE_MODEL = MODELS_DIR / "baseline.keras"
BASELINE_INFO = MODELS_DIR / "baseline.json"

WORKSPACE_ENV = "PATCHLENS_HOME"
DATA_ROOTS_ENV = "PATCHLENS_DATA_ROOTS"
ROOTS_FROM_UI_ENV = "PATCHLENS_ROOTS_FROM_UI"
SWITCH_VALUES = {"1": True, "0": False}


def workspace_dir() -> Path:
    """The workspace (default ./workspace under the project), created on first use."""
    path = Path(os.environ.get(WORKSPACE_ENV) or PROJECT_DIR / "workspace").expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    path = workspace_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    path = workspace_dir() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_roots(extra: list[str | Path] | None = None) -> list[Path]:
    """Folders the dashboard may open datasets from: data/, the workspace, PATCHLENS_DATA_ROOTS, extra."""
    roots = [DATA_DIR, workspace_dir()]
    env = os.environ.get(DATA_ROOTS_ENV, "")
    roots += [Path(p) for p in env.split(os.pathsep) if p.strip()]
    roots += [Path(p) for p in (extra or []) if str(p).strip()]
    resolved: list[Path] = []
    for root in roots:
        real = Path(os.path.realpath(Path(root).expanduser()))
        if real not in resolved:
            resolved.append(real)
    return resolved


def check_allowed(path: str | Path, extra_roots: list[str | Path] | None = None) -> Path:
    """Resolve `path` (following symlinks) and refuse it unless it lies inside a data root.

    Raises PathNotAllowedError naming the roots, so the user knows how to allow a folder.
    """
    text = str(path).strip()
    if not text:
        raise PathNotAllowedError("Enter the path of a dataset folder or file.")
    if "\x00" in text:  # e.g. from a crafted link: os.path would raise ValueError
        raise PathNotAllowedError("A path cannot contain a NUL character.")
    candidate = Path(text).expanduser()
    real = Path(os.path.realpath(candidate))
    roots = data_roots(extra_roots)
    if any(real == root or root in real.parents for root in roots):
        try:  # only now say whether it exists: nothing is revealed about paths outside the roots
            os.path.realpath(candidate, strict=True)
        except FileNotFoundError:
            raise PathNotAllowedError(f"{text} does not exist.") from None
        except OSError as error:  # ELOOP: a symbolic-link loop, or an unreadable component
            raise PathNotAllowedError(f"{text} cannot be resolved: {error.strerror}.") from None
        return real
    listed = ", ".join(str(r) for r in roots)
    raise PathNotAllowedError(
        f"{text} is outside the data roots ({listed}). Add its folder to {DATA_ROOTS_ENV} "
        "(or to the data roots in the sidebar settings) to open it."
    )


def listens_on_loopback(server_address: str | None) -> bool:
    """Whether a server bound to `server_address` (Streamlit's server.address) is reachable from this
    machine only. Unset or empty means every interface, as a hostname other than localhost may."""
    address = (server_address or "").strip().strip("[]")
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # "", "0.0.0.0" is an address; a hostname such as "myhost" is not
        return False


def roots_from_ui(server_address: str | None) -> bool:
    """Whether a web user may add data roots in the sidebar: PATCHLENS_ROOTS_FROM_UI=1 or 0 when set,
    otherwise only when the server listens on localhost (anyone who can reach it sits at this machine).

    Raises InputError for any other value of PATCHLENS_ROOTS_FROM_UI; the caller then keeps it off.
    """
    text = os.environ.get(ROOTS_FROM_UI_ENV, "").strip()
    if not text:
        return listens_on_loopback(server_address)
    if text not in SWITCH_VALUES:
        raise InputError(
            f"{ROOTS_FROM_UI_ENV} must be 1 or 0, not {text!r}: adding data roots in the sidebar is off."
        )
    return SWITCH_VALUES[text]


# Region images: the memory a decode may take, and how long uploads are kept.
REGION_DECODE_ENV = "PATCHLENS_REGION_DECODE_MB"
REGION_DECODE_MB = 256  # one TIFF strip/tile, or a whole PNG/JPEG, decoded (width x height x samples x bytes)
REGION_UPLOAD_DAYS_ENV = "PATCHLENS_REGION_UPLOAD_DAYS"
REGION_UPLOAD_DAYS = 7.0  # uploads on the Region page older than this are deleted at the next upload
REGION_UPLOADS_MB_ENV = "PATCHLENS_REGION_UPLOADS_MB"
REGION_UPLOADS_MB = 2048  # the uploads folder's size cap: the oldest uploads go first


def _positive_number(name: str, default: float) -> float:
    """A positive number from the environment variable `name`, else `default`."""
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 and value != float("inf") else default


def region_decode_budget_bytes() -> int:
    """Bytes one decode of a region image may take (PATCHLENS_REGION_DECODE_MB, default 256 MB)."""
    return int(_positive_number(REGION_DECODE_ENV, REGION_DECODE_MB) * 2**20)


def region_upload_retention() -> tuple[float, int]:
    """(seconds an upload is kept, bytes the uploads folder may hold) for the Region page."""
    days = _positive_number(REGION_UPLOAD_DAYS_ENV, REGION_UPLOAD_DAYS)
    return days * 86400.0, int(_positive_number(REGION_UPLOADS_MB_ENV, REGION_UPLOADS_MB) * 2**20)


# The job engine (core.jobs.engine): an embedded Dask LocalCluster, or an existing cluster by address.
SCHEDULER_ENV = "PATCHLENS_SCHEDULER"  # tcp://host:port of an existing Dask scheduler
ENGINE_WORKERS_ENV = "PATCHLENS_ENGINE_WORKERS"
ENGINE_WORKERS = 2  # worker processes of the embedded cluster: a 2-core machine runs one job per core
ENGINE_THREADS_ENV = "PATCHLENS_ENGINE_THREADS"
ENGINE_THREADS = 1  # tasks at a time per worker (TensorFlow uses the core's threads itself)
ENGINE_MEMORY_ENV = "PATCHLENS_ENGINE_MEMORY_GB"
ENGINE_MEMORY_GB = 4.0  # per worker; a worker past it is restarted by its nanny (its job retried or failed)


def scheduler_address() -> str | None:
    """The address of an existing Dask scheduler to run jobs on (PATCHLENS_SCHEDULER), or None."""
    return os.environ.get(SCHEDULER_ENV, "").strip() or None


def engine_shape() -> dict:
    """The embedded cluster's workers, threads per worker and memory limit per worker (bytes)."""
    return {
        "n_workers": int(_positive_number(ENGINE_WORKERS_ENV, ENGINE_WORKERS)),
        "threads_per_worker": int(_positive_number(ENGINE_THREADS_ENV, ENGINE_THREADS)),
        "memory_limit": int(_positive_number(ENGINE_MEMORY_ENV, ENGINE_MEMORY_GB) * 2**30),
    }
