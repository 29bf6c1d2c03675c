"""Rates and times left of volume transfers, from the updates a watch delivers (no cluster)."""

from __future__ import annotations

from dataclasses import replace

from kbrowse.cluster.movement import RateLog, transfer
from kbrowse.tui.screens.movement import progress_cell, short_bytes, short_duration

MIB = 2**20


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def upload(done: int, phase: str = "InProgress", **status: str) -> dict:
    return {"kind": "DataUpload", "metadata": {"name": "b-1-x", "labels": {"velero.io/backup-name": "b-1"}},
            "spec": {"sourceNamespace": "shop", "sourcePVC": "data"},
            "status": {"phase": phase, "node": "n1", "progress": {"bytesDone": done, "totalBytes": 100 * MIB},
                       "startTimestamp": "2026-12-03T10:00:00Z", **status}}


def test_rate_and_eta_follow_the_samples_and_fall_when_stalled() -> None:
    clock = Clock()
    log = RateLog(clock)
    t0 = transfer(upload(0))
    log.observe(t0)
    assert log.rate(t0) is None and log.eta(t0) is None  # one sample: no rate yet
    clock.now += 2
    t1 = transfer(upload(20 * MIB))
    log.observe(t1)
    assert log.rate(t1) == 10 * MIB and log.eta(t1) == 8.0
    log.observe(replace(t1, phase="InProgress"))  # a status change that moved no bytes: no sample
    clock.now += 2  # no update for 2 s: the rate counts the wait
    assert log.rate(t1) == 5 * MIB
    clock.now += 1
    t2 = transfer(upload(5 * MIB))  # fewer bytes: a new attempt, earlier samples are void
    log.observe(t2)
    assert log.rate(t2) is None


def test_finished_transfers_keep_duration_and_mean_rate() -> None:
    done = transfer(upload(100 * MIB, "Completed", completionTimestamp="2026-12-03T10:00:50Z"))
    assert done.finished and done.mean_rate() == 2 * MIB and done.duration(done.completed) == 50
    assert RateLog(Clock()).rate(done) is None
    assert done.target == "shop/data" and done.owner == "b-1" and done.node == "n1"


def test_cells_fit_their_columns() -> None:
    assert progress_cell(transfer(upload(25 * MIB))) == "██▌·······  25% 25.0M/100M"  # room for 100%
    assert [short_bytes(n) for n in (512, 12 * 1024, 768 * MIB, 4 * 2**30)] == ["512B", "12.0K", "768M", "4.0G"]
    assert [short_duration(s) for s in (45, 200, 3000, 7500, 90000)] == ["45s", "3m20s", "50m", "2h05m", "1d"]
