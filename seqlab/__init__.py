"""seqlab: which sequential model to trust on a price series, and why."""

__version__ = "0.1.0"
