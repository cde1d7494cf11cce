"""The Dask path: the same per-slide jobs submitted to a (local, in-process) cluster."""

from __future__ import annotations

import pytest

from test_batch_e2e import CLEAN_SVS, CORRUPT, NDPI, TIFF, make_batch_sources, read_summary, write_manifest
from wsideid.batch.runner import BatchOptions, run_batch
from wsideid.errors import WsideidError


def test_batch_through_dask_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    make_batch_sources(tmp_path)
    m = write_manifest(tmp_path, [(f"slides/{CLEAN_SVS}", "R-1", "", "", ""), (f"slides/{NDPI}", "R-2", "", "", ""),
                                  (f"slides/{TIFF}", "R-3", "", "", ""), (f"slides/{CORRUPT}", "R-4", "", "", "")])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cl:
        res = run_batch(str(m), str(tmp_path / "o"),
                        BatchOptions(dask=cl.scheduler_address, detect="off", progress=False))
    assert res.counts == {"published": 3, "failed": 1} and res.exit_code == 2
    assert {p.name for p in (tmp_path / "o").glob("R-*") if not p.name.endswith(".json")} == {
        "R-1.svs", "R-2.ndpi", "R-3.tiff"}
    assert read_summary(tmp_path / "o" / "batch-summary.csv")["5"]["error_kind"] == "MalformedFile"


def test_unreachable_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("wsideid.batch.dask.CONNECT_TIMEOUT", "1s")
    make_batch_sources(tmp_path)
    m = write_manifest(tmp_path, [(f"slides/{TIFF}", "R-1", "", "", "")])
    with pytest.raises(WsideidError, match="Dask scheduler"):
        run_batch(str(m), str(tmp_path / "o"), BatchOptions(dask="tcp://127.0.0.1:9", progress=False))
