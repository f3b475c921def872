"""Layer 2b, jobs: one framework for every long job, and the engine that runs them.

A job is a kind (core.jobs.kinds: what it computes, the command it runs, whether it may be rerun), a
key naming its folder, its inputs (the command's arguments) and its outputs (written atomically in or
beside the folder). One lifecycle (core.jobs.status: queued → running → finished | failed | stopped,
progress, phase, heartbeat, stop request; records validated by core.jobs.records); one place to
launch, read, list and stop (core.jobs.launch); one engine (core.jobs.engine: an embedded Dask
LocalCluster of warm worker processes, or an existing cluster by address) whose workers run the
commands (core.jobs.worker). Pages and the command line describe work; the engine runs it.
"""
