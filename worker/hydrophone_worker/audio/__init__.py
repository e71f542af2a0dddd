"""Audio in: PyAV decoding shared by the stream reader (HLS segments in memory) and `detect` (files)."""
