"""The runtime of the command line: what a command orchestrates beyond parsing and printing.

``job``: the whole ``seqlab run`` (ingest, gate, plan, reuse or train on a local Prefect,
report); ``watchdog``: the process that ends the local Prefect server with the command.
"""
