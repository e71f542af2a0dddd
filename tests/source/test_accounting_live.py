"""The accounting test (issue 3): 10 simulated minutes with a seeded mix of faults. Every second of published
audio is delivered exactly once; every other second is inside a gap with the right reason."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from hydrophone_worker.clips import ClipAssembler
from hydrophone_worker.domain import Clip, Gap, Segment
from hydrophone_worker.sim.node import FaultPlan
from hydrophone_worker.source.http import RetryPolicy
from hydrophone_worker.source.live import LiveReader

from .faults import FaultyTransport, seeded_faults
from .harness import EPOCH, STREAM, VirtualTime, assert_accounted, listed_by, make_node, run_reader, utc_at

GRACE_S = 30.0


@pytest.mark.slow
@pytest.mark.integration
def test_ten_minutes_of_random_faults_account_for_every_second(bucket_url: str) -> None:
    plan = FaultPlan(drop_rate=0.06, late_rate=0.12, corrupt_rate=0.06, late_delay_s=(4.0, 20.0), seed=22)
    node = make_node(bucket_url, faults=plan)
    node.start_folder(EPOCH)
    time = VirtualTime(node, EPOCH, until=EPOCH + 610)
    time.at(EPOCH + 185, lambda: node.restart(EPOCH + 203))  # ~20 s lost
    time.at(EPOCH + 371, lambda: node.stop(reason="node-down", latest="delete"))
    time.at(EPOCH + 480, lambda: node.start_folder(EPOCH + 480))  # down ~110 s
    transport = FaultyTransport(seeded_faults(seed=5, rate=0.1))
    reader = LiveReader(
        bucket_url,
        STREAM,
        start_at=utc_at(EPOCH + 2.0),
        client=httpx.Client(transport=transport),
        clock=time.clock,
        sleep=time.sleep,
        stop=time.stop,
        missing_grace_s=GRACE_S,
        stale_after_s=60.0,
        retry=RetryPolicy(attempts=5, initial_s=0.5, max_s=4.0),
    )
    events = run_reader(reader, time)
    truth = node.truth()
    faults = Counter(s.fault for s in truth.segments)
    assert min(faults["drop"], faults["late"], faults["corrupt"]) >= 2, faults  # the mix really happened
    assert sum(transport.injected.values()) >= 10
    end = listed_by(truth, time.until - 5)
    assert end - EPOCH > 590
    assert_accounted(events, truth, GRACE_S, EPOCH + 2.0, end)
    reasons = {e.reason for e in events if isinstance(e, Gap)}
    assert reasons == {"segment-missing", "segment-corrupt", "stream-restart", "node-down"}
    # Through the assembler too: each delivered segment in exactly one clip, each gap passed on once.
    assembler = ClipAssembler(STREAM)
    out = [c for e in events for c in assembler.feed(e)] + assembler.flush()
    in_clips = [r for c in out if isinstance(c, Clip) for r in c.segments]
    assert in_clips == [e.ref for e in events if isinstance(e, Segment)]
    assert [g for g in out if isinstance(g, Gap)] == [e for e in events if isinstance(e, Gap)]
    assert reader.stats.segments_delivered == len(in_clips)
