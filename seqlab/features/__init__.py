"""Features, pure polars/numpy, one module each (imported by name; this package loads none):

- ``sets``: named feature sets, which price columns a model sees (no polars needed to check a name);
- ``scaling``: scalers fitted on train rows only;
- ``windows``: sliding windows, chronological splits and the latest window to forecast from.
"""
