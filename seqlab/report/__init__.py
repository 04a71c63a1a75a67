"""The comparison report of a grid: pure content and figures from warehouse frames.

Entry point: :func:`seqlab.runners.report.build_report` (used by ``seqlab report`` and the
``report`` flow). Everything else here takes polars frames and returns text or figures;
nothing in this package imports prefect or duckdb.
"""
