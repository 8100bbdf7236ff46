"""Where accepted work waits and runs: the `JobQueue` protocol, in-process (`embedded`) or on Redis and rq (`rq`)."""
