"""The shell's jobs as plain functions over the pure core, the grid kit and the warehouse,
callable without Prefect (the Prefect tasks wrap these same steps):

- ``ingest``: one source's files parsed, validated, stored and gated (``ingest_raw``);
- ``grid``: a grid's life in the warehouse, the grid ledger (``GridLedger``, ``run_grid``,
  ``train_single``, ``plan_grid``);
- ``host``: a host's share of a grid, packs planned, trained and delivered (``train_on_host``);
- ``carried``: a grid exported as a folder for a borrowed GPU, and its results imported;
- ``report`` and ``publish``: a grid's report and its committable study folder.

"Run" names one trained config only (a ``runs`` row, ``RunRequest``, ``RunOutcome``); a
grid's end is a ``ClosedGrid``, one ``seqlab train`` config a ``SingleConfigResult``.
"""
