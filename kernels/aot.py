"""Ahead-of-time compiles of every kernel for real NVIDIA targets, without a GPU or a driver.

Triton lowers a kernel to PTX and assembles it with its bundled ``ptxas`` for any ``GPUTarget``; nothing here
needs CUDA. For each kernel × config × precision × input dtype × architecture this records the facts that
decide speed and correctness on a real GPU, all deterministic:

* ``mma`` / ``wgmma``: tensor-core instructions in the PTX (``mma.sync`` on sm_80, ``wgmma.mma_async`` on
  sm_90 where Triton uses it); every precision but "ieee" must have them, "ieee" runs on the FMA units;
* ``registers``, ``spill_bytes`` (spill stores + loads), ``stack_bytes``: from the ``ptxas -v`` log;
* ``shared_bytes``: Triton's shared-memory allocation, against the opt-in limit of the architecture;
* ``narrow_pointer_products``: 32-bit multiplies upstream of a pointer offset in the TTIR (``tt.addptr``):
  each is an offset that wraps once rows × stride ≥ 2³¹; there must be none.

The launch signature is specialised as a real launch at N = 100,000 rows, d = 1024 would be (Triton's own
``specialize_impl``: 16-byte aligned pointers, strides divisible by 16, an int equal to 1 as a constant).

Run ``python -m torchspectral.kernels.aot`` or ``python kernels/aot.py`` (default configs; ``--sweep``: every
autotune config). It must run with ``TRITON_INTERPRET`` unset, because under the interpreter ``@triton.jit``
builds interpreted functions that cannot be compiled: :func:`run_subprocess` starts it without the variable
(the test suite sets it). Output: one JSON record per compile.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ARCHS = (80, 90)
PRECISIONS = ("ieee", "tf32x3", "tf32", "bf16")
# Sizes of the representative launch the signature is specialised for.
ROWS, FEATURES, MODES = 100_000, 1024, 64


@dataclass
class Record:
    kernel: str
    arch: int
    precision: str
    dtype: str
    config: str
    default: bool
    compiled: bool
    error: str = ""
    mma: int = 0
    wgmma: int = 0
    fma: int = 0
    registers: int = -1
    spill_bytes: int = -1
    stack_bytes: int = -1
    shared_bytes: int = -1
    shared_limit: int = -1
    shared_estimate: int = -1
    narrow_pointer_products: int = -1


def _jit_function(fn):
    """Unwrap Autotuner / Heuristics objects down to the ``JITFunction``."""
    import triton

    while not isinstance(fn, triton.runtime.jit.JITFunction):
        fn = fn.fn
    return fn


def _config_name(config) -> str:
    blocks = ",".join(f"{k}={v}" for k, v in config.kwargs.items())
    return f"{blocks},warps={config.num_warps},stages={config.num_stages}"


def kernel_specs() -> list[dict]:
    """Every kernel, its example launch arguments per (precision, dtype), and its configs (first = default)."""
    import torch

    from torchspectral.kernels import instance_score, rbf_cka_sums, rbf_mmd_sums, retrieval_ranks, tuning

    f32, i64, i32 = torch.float32, torch.int64, torch.int32
    n, d, k = ROWS, FEATURES, MODES

    def t(dtype):  # a tiny tensor stands for a pointer: only its dtype and alignment matter
        return torch.empty(16, dtype=dtype)

    bucket = tuning.bucket

    def mmd_args(precision, dtype):
        return {
            "z_ptr": t(f32),
            "z_sq_ptr": t(f32),
            "coef_ptr": t(f32),
            "out_ptr": t(f32),
            "N": 2 * n,
            "n_x": n,
            "D": d,
            "stride_z": d,
            "offset": -0.3,
            "n_bucket": bucket(2 * n),
            "d_bucket": bucket(d),
            "NUM_SIGMA": 1,
            "USE_EXPM1": False,
            "PRECISION": precision,
            "BLOCK_K": tuning.BLOCK_K,
        }

    def cka_args(precision, dtype):
        return {
            "x_ptr": t(f32),
            "y_ptr": t(f32),
            "x_sq_ptr": t(f32),
            "y_sq_ptr": t(f32),
            "part_ptr": t(f32),
            "row_k_ptr": t(f32),
            "row_l_ptr": t(f32),
            "n": n,
            "DX": d,
            "DY": d,
            "stride_x": d,
            "stride_y": d,
            "coef_x": 0.5,
            "coef_y": 0.5,
            "offset_x": -0.3,
            "offset_y": -0.3,
            "n_bucket": bucket(n),
            "d_bucket": bucket(d),
            "EXPM1_X": False,
            "EXPM1_Y": False,
            "PRECISION": precision,
            "BLOCK_K": tuning.BLOCK_K,
        }

    def gt_args(precision, dtype):
        return {
            "x_ptr": t(f32),
            "y_ptr": t(f32),
            "cap_img_ptr": t(i64),
            "gt_ptr": t(f32),
            "M": n,
            "D": d,
            "stride_x": d,
            "stride_y": d,
            "m_bucket": bucket(n),
            "d_bucket": bucket(d),
            "PRECISION": precision,
            "BLOCK_K": tuning.BLOCK_K,
        }

    def rank_args(precision, dtype):
        return {
            "x_ptr": t(f32),
            "y_ptr": t(f32),
            "cap_img_ptr": t(i64),
            "gt_ptr": t(f32),
            "best_ptr": t(f32),
            "i2t_ptr": t(i32),
            "t2i_ptr": t(i32),
            "N": n,
            "M": n,
            "D": d,
            "stride_x": d,
            "stride_y": d,
            "n_bucket": bucket(n),
            "m_bucket": bucket(n),
            "d_bucket": bucket(d),
            "PESSIMISTIC": False,
            "PRECISION": precision,
            "BLOCK_K": tuning.BLOCK_K,
        }

    def instance_args(precision, dtype):
        x = getattr(torch, dtype)
        return {
            "x_ptr": t(x),
            "y_ptr": t(x),
            "mx_ptr": t(f32),
            "my_ptr": t(f32),
            "v_ptr": t(f32),
            "w_ptr": t(f32),
            "out_ptr": t(f32),
            "N": n,
            "D": d,
            "K": k,
            "stride_xn": d,
            "stride_xd": 1,
            "stride_yn": d,
            "stride_yd": 1,
            "N_BUCKET": bucket(n),
            "D_BUCKET": bucket(d),
            "K_BUCKET": bucket(k),
            "ABSOLUTE": False,
            "PRECISION": precision,
        }

    pairwise_estimate = tuning.pairwise_shared_memory
    return [
        {
            "name": "rbf_mmd_sums",
            "fn": rbf_mmd_sums._rbf_mmd_sums_kernel,
            "args": mmd_args,
            "dtypes": ("float32",),
            "estimate": pairwise_estimate,
        },
        {
            "name": "rbf_cka_sums",
            "fn": rbf_cka_sums._rbf_cka_sums_kernel,
            "args": cka_args,
            "dtypes": ("float32",),
            "estimate": pairwise_estimate,
        },
        {
            "name": "retrieval_ground_truth",
            "fn": retrieval_ranks._ground_truth_kernel,
            "args": gt_args,
            "dtypes": ("float32",),
            "estimate": pairwise_estimate,
        },
        {
            "name": "retrieval_rank_count",
            "fn": retrieval_ranks._rank_count_kernel,
            "args": rank_args,
            "dtypes": ("float32",),
            "estimate": pairwise_estimate,
        },
        {
            "name": "instance_score",
            "fn": instance_score._instance_score_kernel,
            "args": instance_args,
            "dtypes": ("float32", "float16", "bfloat16"),
            "estimate": tuning.instance_shared_memory,
        },
    ]


def _source(fn, args: dict, config):
    """``ASTSource`` of ``fn`` for a launch with ``args`` and ``config``, specialised as Triton's JIT would."""
    from triton.compiler import ASTSource

    args = {**args, **config.kwargs}
    signature, constexprs, attrs = {}, {}, {}
    for index, name in enumerate(fn.arg_names):
        value = args[name]
        if index in fn.constexprs:
            signature[name], constexprs[name] = "constexpr", value
            continue
        kind, spec = _specialize(value)
        signature[name] = kind
        if kind == "constexpr":  # an int equal to 1: a constant of the compiled kernel, as at run time
            constexprs[name] = spec
        elif spec == "D":
            attrs[(index,)] = [["tt.divisibility", 16]]
    return ASTSource(fn, signature=signature, constexprs=constexprs, attrs=attrs)


def _specialize(value) -> tuple[str, object]:
    """(type, specialisation) of a launch argument as Triton's JIT derives it: its own ``specialize_impl`` where
    this Triton has it (3.9), else the same rules by hand (pointers and ints divisible by 16 → "D", an int
    equal to 1 → a constant)."""
    try:
        from triton.backends.compiler import BaseBackend
        from triton.runtime.jit import native_specialize_impl
    except ImportError:
        native_specialize_impl = None
    if native_specialize_impl is not None:
        return native_specialize_impl(BaseBackend, value, False, True, True)
    import torch

    if isinstance(value, torch.Tensor):
        kinds = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16", torch.int64: "*i64",
                 torch.int32: "*i32"}  # fmt: skip
        return kinds[value.dtype], "D" if value.data_ptr() % 16 == 0 else ""
    if isinstance(value, bool):
        return "u1", None
    if isinstance(value, int):
        if value == 1:
            return "constexpr", 1
        return ("i32" if -(2**31) <= value < 2**31 else "i64"), "D" if value % 16 == 0 else ""
    return "fp32", None


_PTXAS_REGS = re.compile(r"Used (\d+) registers")
_PTXAS_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_SSA_DEF = re.compile(r"^\s*(%[\w]+)(?::\d+)?\s*=\s*([\w.]+)\s*(.*)$")
_SSA_USE = re.compile(r"%[\w]+")
_ITER_ARG = re.compile(r"(%arg\d+)\s*=\s*(%[\w]+)")


def narrow_pointer_products(ttir: str) -> list[str]:
    """The 32-bit multiplies (``arith.muli`` on ``i32``) upstream of any ``tt.addptr`` offset in the TTIR.

    A pointer offset computed through a 32-bit product wraps once the product reaches 2³¹, widened
    afterwards or not. Values are followed back through every defining op, loop-carried arguments to their
    initial values (``iter_args``); loop induction variables are leaves.

    Example:
        >>> ir = '''
        ... %0 = tt.get_program_id x : i32
        ... %1 = arith.muli %0, %c64_i32 : i32
        ... %2 = tt.splat %1 : i32 -> tensor<64xi32>
        ... %3 = tt.addptr %p, %2 : tensor<64x!tt.ptr<f32>>, tensor<64xi32>
        ... %4 = arith.extsi %0 : i32 to i64
        ... %5 = arith.muli %4, %c64_i64 : i64
        ... %6 = tt.addptr %q, %5 : !tt.ptr<f32>, i64
        ... '''
        >>> narrow_pointer_products(ir)
        ['%1 = arith.muli %0, %c64_i32 : i32']
    """
    defs: dict[str, tuple[str, list[str], str]] = {}
    addptr_offsets: list[str] = []
    for line in ttir.splitlines():
        code = line.split(" loc(")[0]
        for arg, init in _ITER_ARG.findall(code):
            defs.setdefault(arg, ("iter_arg", [init], code.strip()))
        match = _SSA_DEF.match(code)
        if not match:
            continue
        result, op, rest = match.groups()
        operands = list(_SSA_USE.findall(rest.split(" : ")[0]))
        defs[result] = (op, operands, code.strip())
        if op == "tt.addptr" and len(operands) >= 2:
            addptr_offsets.append(operands[1])
    found, seen = [], set()
    stack = list(addptr_offsets)
    while stack:
        name = stack.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        op, operands, text = defs[name]
        result_type = text.rsplit(" : ", 1)[-1] if " : " in text else ""
        if op == "arith.muli" and re.search(r"\bi32\b|xi32>", result_type):
            found.append(text)
        stack.extend(operands)
    return sorted(found)


def _ptxas_facts(log: str) -> tuple[int, int, int]:
    regs = [int(m) for m in _PTXAS_REGS.findall(log)]
    spills = _PTXAS_SPILL.findall(log)
    if not regs or not spills:
        raise RuntimeError(f"no register/spill report in the ptxas log:\n{log}")
    stack, stores, loads = (int(v) for v in spills[-1])
    return regs[-1], stores + loads, stack


def compile_one(spec: dict, config, arch: int, precision: str, dtype: str, default: bool) -> Record:
    """Compile one kernel variant for ``sm_<arch>`` and record its facts (``compiled=False`` with the error)."""
    import triton
    from triton.backends.compiler import GPUTarget

    from torchspectral.kernels.tuning import SHARED_MEMORY_LIMIT

    record = Record(spec["name"], arch, precision, dtype, _config_name(config), default, compiled=False)
    record.shared_limit = SHARED_MEMORY_LIMIT[arch]
    record.shared_estimate = spec["estimate"](config)
    fn = _jit_function(spec["fn"])
    source = _source(fn, spec["args"](precision, dtype), config)
    log = io.StringIO()
    try:
        # ptxas -v prints registers and spills; Triton echoes its log to stdout when asked.
        with contextlib.redirect_stdout(log):
            kernel = triton.compile(
                source,
                target=GPUTarget("cuda", arch, 32),
                options={"num_warps": config.num_warps, "num_stages": config.num_stages},
            )
    except Exception as error:  # a config that does not compile is a finding, not a crash of the survey
        record.error = f"{type(error).__name__}: {str(error)[:500]}"
        return record
    ptx = kernel.asm["ptx"]
    record.compiled = True
    record.mma = len(re.findall(r"^\s*mma\.sync", ptx, flags=re.MULTILINE))
    record.wgmma = len(re.findall(r"^\s*wgmma\.mma_async", ptx, flags=re.MULTILINE))
    record.fma = len(re.findall(r"^\s*fma\.rn\.f32", ptx, flags=re.MULTILINE))
    record.registers, record.spill_bytes, record.stack_bytes = _ptxas_facts(log.getvalue())
    record.shared_bytes = int(kernel.metadata.shared)
    record.narrow_pointer_products = len(narrow_pointer_products(kernel.asm["ttir"]))
    return record


def variants(sweep: bool, archs=ARCHS) -> Iterator[tuple[dict, object, int, str, str, bool]]:
    """(spec, config, arch, precision, dtype, is_default): the default config of each kernel in every
    precision (float32), plus its default config once per further input dtype; ``sweep``: every config."""
    for spec in kernel_specs():
        configs = _autotuner_configs(spec["fn"])
        chosen = configs if sweep else configs[:1]
        for arch in archs:
            for config in chosen:
                for precision in PRECISIONS:
                    yield spec, config, arch, precision, "float32", config is configs[0]
                for dtype in spec["dtypes"][1:]:
                    yield spec, config, arch, "tf32x3", dtype, config is configs[0]


def _autotuner_configs(fn) -> list:
    if not hasattr(fn, "configs"):
        raise TypeError(f"{fn} is not autotuned; the AOT survey compiles every autotune config")
    return list(fn.configs)


def survey(sweep: bool = False, archs=ARCHS) -> list[Record]:
    """Compile every variant (see :func:`variants`); the records in order."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError(
            "the AOT compiles need TRITON_INTERPRET unset (interpreted kernels cannot be compiled); "
            "use torchspectral.kernels.aot.run_subprocess()"
        )
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9 warns when it is unset; 1 = its default
    import triton

    # ptxas's log (registers, spills) is printed, and every compile runs ptxas (no on-disk cache hit). The
    # environment variables say the same for a Triton without ``knobs`` (read when the compile runs).
    os.environ["TRITON_DUMP_PTXAS_LOG"] = os.environ["TRITON_ALWAYS_COMPILE"] = "1"
    if hasattr(triton, "knobs"):
        triton.knobs.nvidia.dump_ptxas_log = True
        triton.knobs.compilation.always_compile = True
    return [compile_one(*variant) for variant in variants(sweep, archs)]


def run_subprocess(sweep: bool = False, archs=ARCHS, timeout: float | None = None) -> list[dict]:
    """:func:`survey` in a fresh interpreter without ``TRITON_INTERPRET`` (the records as dicts)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    # This file as a script (not ``-m``): it also works from a checkout that is not installed.
    command = [sys.executable, __file__, "--json", "-", "--arch", *map(str, archs)]
    if sweep:
        command.append("--sweep")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"AOT survey failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)


def table(records: list[dict]) -> str:
    """One line per compile: kernel, arch, precision, dtype, config, mma/wgmma, registers, spills, smem."""
    lines = [
        f"{'kernel':24} {'sm':>3} {'precision':9} {'dtype':8} {'config':46} {'mma':>4} {'wgmma':>5} "
        f"{'regs':>4} {'spill':>6} {'smem':>7} {'n32':>3}"
    ]
    for r in records:
        if not r["compiled"]:
            lines.append(f"{r['kernel']:24} {r['arch']:>3} {r['precision']:9} {r['dtype']:8} {r['config']:46} "
                         f"FAILED {r['error'][:60]}")  # fmt: skip
            continue
        lines.append(
            f"{r['kernel']:24} {r['arch']:>3} {r['precision']:9} {r['dtype']:8} {r['config']:46} {r['mma']:>4} "
            f"{r['wgmma']:>5} {r['registers']:>4} {r['spill_bytes']:>6} {r['shared_bytes']:>7} "
            f"{r['narrow_pointer_products']:>3}"
        )
    return "\n".join(lines)


def _ensure_importable() -> None:
    """``python kernels/aot.py`` from a checkout that is not installed: import the package from the checkout's root
    (``torchspectral/kernels.py`` finds this folder by itself)."""
    try:
        import torchspectral.kernels
    except ImportError:
        root = Path(__file__).resolve().parents[1]
        sys.path.insert(0, str(root))
        import torchspectral.kernels  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    _ensure_importable()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action="store_true", help="every autotune config, not only the default ones")
    parser.add_argument("--arch", type=int, nargs="+", default=list(ARCHS), help="compute capabilities (80 90)")
    parser.add_argument("--json", help="write the records as JSON here ('-': stdout, the table then on stderr)")
    args = parser.parse_args(argv)
    records = [asdict(r) for r in survey(args.sweep, tuple(args.arch))]
    text = table(records)
    if args.json == "-":
        json.dump(records, sys.stdout)
        print(text, file=sys.stderr)
    else:
        if args.json:
            with open(args.json, "w") as out:
                json.dump(records, out, indent=1)
        print(text)
    failed = [r for r in records if not r["compiled"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
