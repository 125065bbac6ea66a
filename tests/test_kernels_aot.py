"""Ahead-of-time compiles of every kernel for sm_80 and sm_90 (no GPU needed): tensor cores, spills, shared
memory and 64-bit pointer offsets, checked on the real PTX/cubin Triton would load.

The default config of each kernel is compiled in every precision (float32 inputs), plus the instance score's
other input dtypes (float16, bfloat16); ``make aot-sweep`` compiles every autotune config. The compiles run in
a subprocess without ``TRITON_INTERPRET`` (conftest sets it, and interpreted kernels cannot be compiled).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from torchspectral.kernels import aot, available

pytestmark = pytest.mark.skipif(not available(), reason="triton is not installed")


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return aot.run_subprocess(sweep=False, timeout=600)


def _label(r: dict) -> str:
    return f"{r['kernel']} sm_{r['arch']} {r['precision']} {r['dtype']} [{r['config']}]"


def test_every_kernel_arch_precision_and_dtype_is_compiled(records) -> None:
    failed = [f"{_label(r)}: {r['error']}" for r in records if not r["compiled"]]
    assert not failed, "\n".join(failed)
    seen = {(r["kernel"], r["arch"], r["precision"], r["dtype"]) for r in records}
    kernels = {"rbf_mmd_sums", "rbf_cka_sums", "retrieval_ground_truth", "retrieval_rank_count", "instance_score"}
    assert {k for k, *_ in seen} == kernels
    for kernel in kernels:
        for arch in aot.ARCHS:
            for precision in aot.PRECISIONS:
                assert (kernel, arch, precision, "float32") in seen
    for dtype in ("float16", "bfloat16"):
        assert ("instance_score", 90, "tf32x3", dtype) in seen


def test_tensor_cores_unless_ieee(records) -> None:
    for r in records:
        tensor_core = r["mma"] + r["wgmma"]
        if r["precision"] == "ieee":
            assert tensor_core == 0 and r["fma"] > 0, _label(r)  # exact fp32: the FMA units
        else:
            assert tensor_core > 0, f"{_label(r)}: no mma/wgmma in the PTX"


def test_default_configs_do_not_spill(records) -> None:
    spilling = [f"{_label(r)}: {r['spill_bytes']} B spilled, {r['registers']} registers" for r in records
                if r["default"] and r["spill_bytes"] != 0]  # fmt: skip
    assert not spilling, "\n".join(spilling)


def test_shared_memory_within_the_arch_limit_and_the_pruning_estimate(records) -> None:
    for r in records:
        assert 0 < r["shared_bytes"] <= r["shared_limit"], _label(r)
        # The autotune pruning (kernels/tuning.py) drops configs by this estimate before compiling them: it must
        # not under-estimate, or a config that does not fit would be kept and fail at launch.
        assert r["shared_bytes"] <= r["shared_estimate"], f"{_label(r)}: {r['shared_bytes']} > estimate"


def test_no_32_bit_multiply_feeds_a_pointer(records) -> None:
    narrow = [_label(r) for r in records if r["narrow_pointer_products"] != 0]
    assert not narrow, "\n".join(narrow)


def test_the_pointer_check_finds_a_32_bit_loop_offset(tmp_path) -> None:
    """The TTIR check on a real compile: a column loop starting at a literal 0 (the bug the kernels had) is
    caught, its int64 form is not."""
    script = textwrap.dedent(
        """
        import triton, triton.language as tl
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        from torchspectral.kernels.aot import narrow_pointer_products

        @triton.jit
        def walk(p, out, n, stride, WIDE: tl.constexpr):
            acc = tl.zeros((32,), tl.float32)
            for jb in range(0, tl.cdiv(n, 32)):
                if WIDE:
                    cols = tl.cast(jb, tl.int64) * 32 + tl.arange(0, 32)
                else:
                    cols = jb * 32 + tl.arange(0, 32)
                acc += tl.load(p + cols * stride, mask=cols < n, other=0.0)
            tl.store(out + tl.arange(0, 32), acc)

        for wide in (False, True):
            src = ASTSource(walk, signature={"p": "*fp32", "out": "*fp32", "n": "i32", "stride": "i32",
                                             "WIDE": "constexpr"}, constexprs={"WIDE": wide})
            k = triton.compile(src, target=GPUTarget("cuda", 80, 32), options={"num_warps": 1})
            print(len(narrow_pointer_products(k.asm["ttir"])))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    path = tmp_path / "walk.py"  # @triton.jit needs its source in a file
    path.write_text(script)
    done = subprocess.run([sys.executable, str(path)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    narrow, wide = (int(v) for v in done.stdout.split())
    assert narrow >= 1
    assert wide == 0


def test_narrow_pointer_products_follows_values_back() -> None:
    ttir = """
    %0 = tt.get_program_id x : i32
    %1 = arith.muli %0, %c64_i32 : i32
    %2 = tt.splat %1 : i32 -> tensor<64xi32>
    %3 = tt.addptr %p, %2 : tensor<64x!tt.ptr<f32>>, tensor<64xi32>
    %4 = arith.extsi %0 : i32 to i64
    %5 = arith.muli %4, %c64_i64 : i64
    %6 = tt.addptr %q, %5 : !tt.ptr<f32>, i64
    %7 = arith.muli %0, %c3_i32 : i32
    """
    # %1 feeds a pointer through a splat; %5 is 64-bit; %7 feeds no pointer.
    assert aot.narrow_pointer_products(ttir) == ["%1 = arith.muli %0, %c64_i32 : i32"]
    widened_late = "%1 = arith.muli %0, %c64_i32 : i32\n%2 = arith.extsi %1 : i32 to i64\n%3 = tt.addptr %p, %2 : x"
    assert len(aot.narrow_pointer_products(widened_late)) == 1  # widening after the product does not help
