"""The fused recurrence kernels compiled for a GPU target without a GPU: registers and spills.

Triton compiles ahead of time (its own ptxas, no driver needed), so the kernels the fused
engine launches can be checked on any machine: that they compile for the target at all
(the CPU interpreter accepts programs the compiler would not) and how many registers each
program holds and spills (local memory, from the cubin) at the engine's launch options (``launch_options``), or at each
tile of ``--sweep``. Spills turn on-chip recurrent state into local-memory traffic on every
time step, so the engine's options are chosen to spill nothing; and a program's shared memory must fit
the GPU's (227 KiB per block on an H100/H200) or it cannot launch at all.

    python benchmarks/bench_kernels.py [--hidden 16 32 64 128] [--arch 90] [--sweep] [--json PATH]

Prints one line per kernel and a JSON summary. Run without TRITON_INTERPRET (the
interpreter replaces the language it compiles).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

SIGNATURES = {
    "forward": {"xp_ptr": "*fp32", "whh_ptr": "*fp32", "bhh_ptr": "*fp32", "y_ptr": "*fp32",
                "saved_ptr": "*fp32", "T": "i32", "B": "i32"},
    "backward": {"dy_ptr": "*fp32", "whh_ptr": "*fp32", "y_ptr": "*fp32", "saved_ptr": "*fp32",
                 "dx_ptr": "*fp32", "dh_ptr": "*fp32", "T": "i32", "B": "i32"},
}
SWEEP = [(16, 4), (16, 8), (32, 4), (32, 8), (64, 8)]


def compile_kernel(direction: str, cell: str, hidden: int, block: int, warps: int, arch: int,
                   stages: int | None = None) -> dict:
    """Compile one kernel for ``sm_<arch>``; its registers, spill bytes, shared memory, blocks
    per SM that shared memory allows, and compile seconds (``stages`` None: Triton's default)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    from seqlab.models import triton_rnn

    fn = JITFunction(triton_rnn._forward if direction == "forward" else triton_rnn._backward)
    constants = {"H": hidden, "G": triton_rnn.GATES[cell], "S": max(triton_rnn.SAVED[cell], 1),
                 "CELL": triton_rnn.CELL_CODES[cell], "BLOCK_B": block, "PRECISION": "tf32"}
    if direction == "forward":
        constants["SAVE"] = True
    signature = {**SIGNATURES[direction], **dict.fromkeys(constants, "constexpr")}
    started = time.perf_counter()
    kernel = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constants),
                            target=GPUTarget("cuda", arch, 32),
                            options={"num_warps": warps,
                                     **({"num_stages": stages} if stages else {})})
    seconds = time.perf_counter() - started
    # The cubin Triton built with its own ptxas, read back with the cuobjdump it ships:
    # STACK is the per-thread stack frame, where registers that do not fit spill (these
    # kernels call nothing), the number ptxas -v gives as "bytes stack frame".
    tools = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    with tempfile.NamedTemporaryFile("wb", suffix=".cubin", delete=False) as handle:
        handle.write(kernel.asm["cubin"])
    try:
        report = subprocess.run([str(tools / "cuobjdump"), "--dump-resource-usage", handle.name],
                                capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(handle.name)
    registers = re.search(r"REG:(\d+)", report)
    stack = re.search(r"STACK:(\d+)", report)
    shared = int(kernel.metadata.shared)
    return {"direction": direction, "cell": cell, "hidden": hidden, "block_b": block,
            "num_warps": warps, "num_stages": stages,
            "registers": int(registers.group(1)) if registers else None,
            "spill_bytes": int(stack.group(1)) if stack else None, "shared_bytes": shared,
            "blocks_per_sm_by_shared": triton_rnn.SM_SHARED_BYTES
            // (shared + triton_rnn.BLOCK_RESERVED_BYTES), "compile_s": round(seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 80, 90")
    parser.add_argument("--sweep", action="store_true", help=f"every tile of {SWEEP}, not only "
                                                              "the engine's options")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # triton 3.9 warns when unset
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        parser.error("unset TRITON_INTERPRET: the interpreter cannot compile kernels")
    from seqlab.models.triton_rnn import launch_options

    rows = []
    for hidden, cell, direction in itertools.product(args.hidden, args.cells,
                                                     ("forward", "backward")):
        options = launch_options(hidden, cell, direction)
        engine = (options["BLOCK_B"], options["num_warps"], options.get("num_stages"))
        tiles = [(b, w, engine[2]) for b, w in SWEEP] if args.sweep else [engine]
        for block, warps, stages in tiles:
            row = compile_kernel(direction, cell, hidden, block, warps, args.arch, stages)
            row["engine_default"] = (block, warps, stages) == engine
            rows.append(row)
            print(f"{cell:<5} H={hidden:<4} {direction:<8} block {block:>2} x {warps} warps"
                  f"{f' x {stages} stages' if stages else ''}: "
                  f"{row['registers']} registers, {row['spill_bytes']} bytes spilled, "
                  f"{row['shared_bytes'] // 1024} KiB shared "
                  f"({row['blocks_per_sm_by_shared']} blocks/SM) "
                  f"({row['compile_s']} s){'  <- engine' if row['engine_default'] else ''}",
                  flush=True)
    engine = [r for r in rows if r["engine_default"]]
    summary = {"arch": f"sm_{args.arch}", "kernels": rows,
               "engine_spill_bytes": sum(r["spill_bytes"] for r in engine),
               "engine_max_shared_bytes": max((r["shared_bytes"] for r in engine), default=0)}
    print(json.dumps({k: v for k, v in summary.items() if k != "kernels"}))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
