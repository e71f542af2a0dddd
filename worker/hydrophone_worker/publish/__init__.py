"""Publishing positive clips: record, artifacts, durable outbox, and the sinks it delivers to."""
