"""Orcasound HLS audio: live (`source.live.LiveReader`) and historical (`source.history.RangeReader`).

Both readers yield a time-ordered stream of `Segment | Gap` events in which every second of stream time
appears exactly once; `hydrophone_worker.clips.ClipAssembler` turns it into clips.
"""
