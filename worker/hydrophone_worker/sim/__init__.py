"""A simulated Orcasound hydrophone node: HLS (latest.txt, live.m3u8, liveNNN.ts) published into S3.

`s3server` runs moto on 127.0.0.1, `audio` makes or loads the sound, `encode` turns it into AAC-LC MPEG-TS
segments with PyAV, `playlist` renders live.m3u8, `node` publishes on virtual time with faults and keeps the
ground truth, `clock` drives a node from the wall clock, `cli` is `hydrophone-worker simulate`.
"""
