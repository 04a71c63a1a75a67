"""How a grid's runs are handed out: the pack modes and the shards of a worker pool.

Torch-free, so the command line checks ``--pack-mode`` before anything heavy loads.
"""

from __future__ import annotations

from collections.abc import Iterable

from seqlab.grid.spec import GridError

PACK_MODES = ("streams", "batched", "fused")


def check_pack_mode(mode: str) -> None:
    if mode not in PACK_MODES:
        raise ValueError(f"unknown pack_mode {mode!r}; allowed: {', '.join(PACK_MODES)}")


def split_shards(items: list, shard_count: int) -> list[list]:
    """Deal items round-robin into at most ``shard_count`` non-empty shards."""
    if shard_count < 1:
        raise GridError(f"shard count must be >= 1, got {shard_count}")
    shards = [items[i::shard_count] for i in range(min(shard_count, len(items)))]
    return [s for s in shards if s]


class DeploymentMismatch(GridError):
    """A deployment whose flow does not take the parameters a grid sends it."""


def check_deployment_parameters(deployment: str, schema: dict | None,
                                parameters: Iterable[str]) -> None:
    """Refuse, in one line, parameter names the deployment's flow does not take.

    ``schema`` is the deployment's ``parameter_openapi_schema``. Prefect's server accepts any
    parameters and the flow run then fails on the worker with a message that names neither the
    deployment nor the fix; the usual cause is a deployment registered from an older seqlab.
    A deployment without a schema says nothing about its parameters and is let through.
    """
    if not schema or "properties" not in schema:
        return
    unknown = sorted(set(parameters) - set(schema["properties"]))
    if unknown:
        raise DeploymentMismatch(
            f"deployment {deployment!r} does not take parameter(s) {', '.join(unknown)} "
            f"(it takes {', '.join(sorted(schema['properties'])) or 'none'}): it was deployed "
            "from another seqlab version; redeploy it from this checkout with "
            "`prefect deploy --all`")
