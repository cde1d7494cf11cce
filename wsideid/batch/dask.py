"""Scale-out: the same per-slide jobs on a Dask distributed cluster.

Nothing here schedules: ``Client(address).map`` hands ``run_job`` and the
jobs to the cluster's scheduler. Workers must see the sources, OUTDIR and
the review folder at the same paths (shared storage), and have wsideid
installed; each job writes its own outputs and record there, so the only
thing that travels back is the PHI-free summary row.
"""

from __future__ import annotations

import uuid
from typing import Any, Iterator

from ..errors import WsideidError
from .job import SlideJob, lost_job, run_job

CONNECT_TIMEOUT = "20s"  # how long to wait for the scheduler before giving up


def execute_dask(jobs: list[SlideJob], address: str) -> Iterator[dict[str, Any]]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise WsideidError("--dask needs dask.distributed (pip install 'dask[distributed]')") from None
    if not jobs:
        return
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise WsideidError(f"cannot reach the Dask scheduler ({type(exc).__name__})") from None
    try:
        token = uuid.uuid4().hex[:8]
        futures = client.map(run_job, jobs, key=[f"wsideid-{token}-{j.row}" for j in jobs], pure=False)
        by_key = {f.key: j for f, j in zip(futures, jobs)}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker fails its slide only
                yield lost_job(by_key[fut.key], exc)
    finally:
        client.close()
