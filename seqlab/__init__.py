"""seqlab: which sequential model to trust on a price series, and why."""

__version__ = "0.1.0"

import os as _os

# Small recurrent models on a few cores: OpenMP threads that spin while waiting steal the cores
# other training processes need (measured: one GRU epoch 14-50 s spinning vs 3-5 s passive on a
# shared 2-core box). Must be set before torch loads OpenMP; an explicit setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
