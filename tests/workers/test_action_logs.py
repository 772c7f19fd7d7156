"""Issue 14: the service's log says what it did. Each scale action, dry-run action and failed
action is one line naming the scaler, the counts and the reason that set them; quiet ticks
log nothing."""

from __future__ import annotations

import logging

import pytest

from app.kube.cluster import ClusterError, RecordingCluster
from app.policy.spec import TargetRef
from app.store.db import Database
from app.workers.reconciler import reconcile_once
from testkit.clock import FakeClock
from tests.workers.test_reconciler import NOW, add_scaler, push

LOGGER = "ciuic.workers.reconciler"


class RefusingCluster(RecordingCluster):
    async def scale(self, target: TargetRef, replicas: int) -> None:
        raise ClusterError("deployments.apps is forbidden")


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


async def test_a_scale_up_is_one_info_line_with_its_reason(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    await add_scaler(db)
    await push(db, NOW - 2, util=170.0, queue=10.0)
    cluster = RecordingCluster(initial_replicas=1)
    await reconcile_once(db, cluster, FakeClock(NOW))
    [record] = lines(caplog)
    assert record.levelno == logging.INFO
    message = record.getMessage()
    # the load's reason (a reading twice the target per pod: the panic rule)
    assert message.startswith("scaled deepseek-service from 1 to 2: panic: the newest reading ")
    fields = vars(record)
    assert (fields["scaler"], fields["from_replicas"], fields["to_replicas"]) == (
        "deepseek-service",
        1,
        2,
    )
    assert fields["reason"] == "reactive.panic"
    # the next tick keeps 2: nothing to say
    await reconcile_once(db, cluster, FakeClock(NOW + 5))
    assert len(lines(caplog)) == 1


async def test_a_dry_run_says_what_it_would_do(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    await add_scaler(db, mode="dry_run")
    await push(db, NOW - 2, util=170.0, queue=10.0)
    await reconcile_once(db, RecordingCluster(initial_replicas=1), FakeClock(NOW))
    [record] = lines(caplog)
    assert record.getMessage().startswith("would scale deepseek-service from 1 to 2 (dry run): ")


async def test_a_failed_action_is_logged_with_the_cluster_error(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    await add_scaler(db)
    await push(db, NOW - 2, util=170.0, queue=10.0)
    await reconcile_once(db, RefusingCluster(initial_replicas=1), FakeClock(NOW))
    [record] = lines(caplog)
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith("failed to scale deepseek-service from 1 to 2: ")
    assert "forbidden" in message


async def test_a_bound_is_the_reason_when_it_sets_the_count(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    await add_scaler(db, max_replicas=2)
    await push(db, NOW - 2, util=100.0, queue=500.0)
    await reconcile_once(db, RecordingCluster(initial_replicas=1), FakeClock(NOW))
    [record] = lines(caplog)
    assert vars(record)["reason"] == "bounds.max", record.getMessage()
    assert "from 1 to 2" in record.getMessage()


def test_each_serve_worker_process_sets_up_the_logging_serve_set_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`ciuic serve --workers N` builds each worker's app in a fresh interpreter: the factory
    it names configures the same JSON lines at the same level there, or the scale-action lines
    of the leading worker would go nowhere."""
    import logging

    from app.logs import JsonFormatter
    from app.main import create_worker_app
    from app.settings import get_settings

    monkeypatch.setenv("CIUIC_LOG_LEVEL", "DEBUG")
    get_settings.cache_clear()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        root.handlers[:] = []
        create_worker_app()
        assert root.level == logging.DEBUG
        assert [type(h.formatter) for h in root.handlers] == [JsonFormatter]
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        get_settings.cache_clear()
