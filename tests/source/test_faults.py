"""LiveReader under faults: late, missing and corrupt segments, HTTP 500s and timeouts, a node going down."""

from __future__ import annotations

import httpx
import pytest
from hydrophone_worker.domain import Gap, Segment
from hydrophone_worker.sim.node import Fault, FaultPlan
from hydrophone_worker.source.http import FetchError, RetryingFetcher, RetryPolicy
from hydrophone_worker.source.live import LiveReader

from .faults import FaultyTransport, first_n_fail, seeded_faults
from .harness import (
    EPOCH,
    STREAM,
    VirtualTime,
    assert_accounted,
    listed_by,
    make_node,
    run_reader,
    same_time,
    utc_at,
)

pytestmark = pytest.mark.integration
GRACE_S = 30.0
RETRY = RetryPolicy(attempts=6, initial_s=0.5, max_s=4.0, jitter_s=0.5)


def reader_for(
    bucket_url: str, time: VirtualTime, transport: httpx.BaseTransport | None = None, **options: object
) -> LiveReader:
    client = httpx.Client(transport=transport) if transport else None
    return LiveReader(
        bucket_url,
        STREAM,
        start_at=utc_at(EPOCH + 2.0),
        client=client,
        clock=time.clock,
        sleep=time.sleep,
        stop=time.stop,
        missing_grace_s=GRACE_S,
        retry=RETRY,
        **options,
    )


def test_a_late_segment_is_delivered_and_a_never_uploaded_one_is_a_gap(bucket_url: str) -> None:
    plan = FaultPlan(explicit={(EPOCH, 1): Fault("late", 20.0), (EPOCH, 3): Fault("drop")})
    node = make_node(bucket_url, faults=plan)
    node.start_folder(EPOCH)
    time = VirtualTime(node, EPOCH, until=EPOCH + 100)
    reader = reader_for(bucket_url, time)
    events = run_reader(reader, time)
    truth = node.truth()
    assert_accounted(events, truth, GRACE_S, EPOCH + 2.0, listed_by(truth, time.until - 5))
    labels = [e.ref.sequence if isinstance(e, Segment) else e.reason for e in events]
    assert labels[:6] == [0, 1, 2, "segment-missing", 4, 5]  # order kept: 2 waited for the late 1
    missing = events[3]
    assert same_time(missing.start, truth.segments[3].ref.start) and same_time(
        missing.end, truth.segments[3].ref.end
    )
    assert reader.stats.fetch_errors["segment-not-found"] >= 2


def test_a_corrupt_segment_is_a_gap(bucket_url: str) -> None:
    node = make_node(bucket_url, faults=FaultPlan(explicit={(EPOCH, 2): Fault("corrupt")}))
    node.start_folder(EPOCH)
    time = VirtualTime(node, EPOCH, until=EPOCH + 60)
    reader = reader_for(bucket_url, time)
    events = run_reader(reader, time)
    truth = node.truth()
    assert_accounted(events, truth, GRACE_S, EPOCH + 2.0, listed_by(truth, time.until - 5))
    [gap] = [e for e in events if isinstance(e, Gap)]
    assert gap.reason == "segment-corrupt" and "live002.ts" in gap.detail
    assert reader.stats.fetch_errors["segment-corrupt"] == 1


def test_500s_timeouts_and_refused_connections_are_retried_with_backoff(bucket_url: str) -> None:
    node = make_node(bucket_url)
    node.start_folder(EPOCH)
    time = VirtualTime(node, EPOCH, until=EPOCH + 60)
    transport = FaultyTransport(seeded_faults(seed=3, rate=0.35))
    reader = reader_for(bucket_url, time, transport)
    events = run_reader(reader, time)
    truth = node.truth()
    assert all(isinstance(e, Segment) for e in events)
    assert_accounted(events, truth, GRACE_S, EPOCH + 2.0, listed_by(truth, time.until - 5))
    assert min(transport.injected[k] for k in ("500", "timeout", "connect")) >= 2, transport.injected
    errors = reader.stats.fetch_errors
    assert (errors["server-error"], errors["timeout"], errors["connection"]) == (
        transport.injected["500"],
        transport.injected["timeout"],
        transport.injected["connect"],
    )


def test_backoff_grows_exponentially_and_stays_bounded(bucket_url: str) -> None:
    node = make_node(bucket_url)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + 12.1)  # live000.ts is listed
    time = VirtualTime(node, EPOCH + 12.1, until=EPOCH + 30)
    reader = reader_for(bucket_url, time, FaultyTransport(first_n_fail(4, "500", "live000.ts")))
    events = run_reader(reader, time)
    assert events[0].ref.sequence == 0
    retry_waits = time.sleeps[:4]
    for attempt, wait in enumerate(retry_waits):
        base = min(RETRY.initial_s * 2**attempt, RETRY.max_s)
        assert base <= wait <= base + RETRY.jitter_s
    assert reader.stats.fetch_errors["server-error"] == 4


def test_a_segment_failing_past_the_grace_period_becomes_a_missing_gap(bucket_url: str) -> None:
    node = make_node(bucket_url)
    node.start_folder(EPOCH)
    time = VirtualTime(node, EPOCH, until=EPOCH + 90)
    always = FaultyTransport(lambda r: "500" if r.url.path.endswith("live002.ts") else None)
    events = run_reader(reader_for(bucket_url, time, always), time)
    labels = [e.ref.sequence if isinstance(e, Segment) else e.reason for e in events]
    assert labels[:4] == [0, 1, "segment-missing", 3]
    assert "server-error" in events[2].detail


@pytest.mark.parametrize(
    ("latest", "endlist", "state_soon_after", "why"),
    [
        ("delete", False, "node-down", "latest.txt answers 404/403"),  # latest.txt gone: down at once
        ("keep", True, "node-down", "closed (#EXT-X-ENDLIST)"),  # the playlist was closed: down at once
        ("keep", False, "streaming", "no new segment for 60 s"),  # latest.txt goes stale: down after 60 s
    ],
    ids=["latest-deleted", "endlist", "stale"],
)
def test_node_down_for_a_while_then_back(
    bucket_url: str,
    latest: str,
    endlist: bool,
    state_soon_after: str,
    why: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = make_node(bucket_url)
    node.start_folder(EPOCH)
    time = VirtualTime(node, EPOCH, until=EPOCH + 330)
    states: list[str] = []
    reader = reader_for(bucket_url, time, max_poll_interval_s=40.0, stale_after_s=60.0)
    time.at(EPOCH + 35, lambda: node.stop(reason="node-down", latest=latest, endlist=endlist))
    time.at(EPOCH + 50, lambda: states.append(reader.stats.state))
    time.at(EPOCH + 200, lambda: states.append(reader.stats.state))
    time.at(EPOCH + 270, lambda: node.start_folder(EPOCH + 270))
    time.at(EPOCH + 320, lambda: states.append(reader.stats.state))
    events = run_reader(reader, time)
    truth = node.truth()
    assert_accounted(events, truth, GRACE_S, EPOCH + 2.0, listed_by(truth, time.until - 5))
    assert states == [state_soon_after, "node-down", "streaming"]
    [gap] = [e for e in events if isinstance(e, Gap)]
    assert gap.reason == "node-down" and gap.end == utc_at(EPOCH + 272.0)
    assert {10.0, 20.0, 40.0} <= set(time.sleeps) and max(time.sleeps) == 40.0  # doubling, capped
    assert len(time.sleeps) < 35  # 330 s: no busy loop while the node was down
    [message] = [r.getMessage() for r in caplog.records if "node down" in r.getMessage()]  # said once
    assert why in message


def test_garbage_latest_txt_and_playlist_are_counted_and_polling_goes_on(bucket_url: str) -> None:
    node = make_node(bucket_url)
    node.start_folder(EPOCH)
    time = VirtualTime(node, EPOCH, until=EPOCH + 40)

    def put(key: str, body: bytes) -> None:
        node.s3.put_object(Bucket=node.bucket, Key=key, Body=body)

    put(node.latest_key, b"<html>oops</html>")
    time.at(EPOCH + 13, lambda: put(node.folder_key(EPOCH, "live.m3u8"), b"<Error>SlowDown</Error>"))
    time.at(EPOCH + 20, lambda: put(node.latest_key, f"{EPOCH}\n".encode()))  # the node rewrites both
    reader = reader_for(bucket_url, time)
    events = run_reader(reader, time)
    assert reader.stats.fetch_errors["latest-invalid"] == 1  # parsed once: the ETag says it did not change
    assert reader.stats.fetch_errors["playlist-invalid"] >= 1
    assert [e.ref.sequence for e in events] == [0, 1, 2]


def test_a_client_error_is_not_retried_and_names_the_url(moto_endpoint: str) -> None:
    transport = FaultyTransport(lambda request: "400")
    with httpx.Client(transport=transport) as client:
        fetcher = RetryingFetcher(client, sleep=lambda _: None, policy=RETRY)
        with pytest.raises(FetchError, match=r"GET http://127\.0\.0\.1:\d+/b/x: client-error: HTTP 400"):
            fetcher.get(f"{moto_endpoint}/b/x")
    assert transport.injected["400"] == 1 and fetcher.errors["client-error"] == 1


def test_when_folder_listing_fails_a_resume_falls_back_to_latest_txt(
    bucket_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    node = make_node(bucket_url)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + 30)
    node.restart(EPOCH + 48)
    node.advance_to(EPOCH + 75)
    time = VirtualTime(node, EPOCH + 75, until=EPOCH + 100)  # the listing retries take ~10 s
    listing_down = FaultyTransport(lambda r: "500" if "list-type" in r.url.query.decode() else None)
    events = run_reader(reader_for(bucket_url, time, listing_down), time)
    assert "folder listing failed" in caplog.text
    assert {e.ref.folder for e in events if isinstance(e, Segment)} == {EPOCH + 48}
    assert isinstance(events[0], Gap) and events[0].start == utc_at(EPOCH + 2.0)  # nothing silently skipped
