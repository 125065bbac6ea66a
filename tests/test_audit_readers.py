"""Embedding readers: every format and layout, float32 conversion, pairing, and one clear error per bad input."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import expect_audit_error
from safetensors.torch import save_file

from torchspectral.audit.manifest import RunSpec
from torchspectral.audit.readers import PairedEmbeddings, read_index, read_matrix, read_run


def matrix(n: int = 6, d: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def run(**files: Path) -> RunSpec:
    return RunSpec(model="m", dataset="d", domain="x", **files)


expect_error = expect_audit_error


# ── formats ───────────────────────────────────────────────────────────────────────────────────────


def test_every_format_reads_the_same_matrix(tmp_path: Path) -> None:
    x = matrix()
    save_file({"emb": x}, tmp_path / "a.safetensors")
    np.save(tmp_path / "a.npy", x.numpy())
    np.savez(tmp_path / "a.npz", x.numpy())
    np.savez(tmp_path / "named.npz", emb=x.numpy(), other=np.zeros(3))
    torch.save(x, tmp_path / "a.pt")
    torch.save({"emb": x, "other": torch.zeros(3)}, tmp_path / "a.pth")
    (tmp_path / "UPPER.NPY").write_bytes((tmp_path / "a.npy").read_bytes())
    for name, key in [("a.safetensors", None), ("a.npy", None), ("a.npz", None), ("named.npz", "emb"),
                      ("a.pt", None), ("a.pth", "emb"), ("UPPER.NPY", None)]:  # fmt: skip
        got = read_matrix(tmp_path / name, key=key)
        assert got.dtype == torch.float32 and got.is_contiguous(), name
        torch.testing.assert_close(got, x, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_other_float_dtypes_become_float32(tmp_path: Path, dtype: torch.dtype) -> None:
    x = matrix().to(dtype)
    save_file({"x": x}, tmp_path / "x.safetensors")
    torch.save(x, tmp_path / "x.pt")
    for name in ("x.safetensors", "x.pt"):
        got = read_matrix(tmp_path / name)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, x.float(), rtol=0, atol=0)
    if dtype != torch.bfloat16:  # numpy has no bfloat16
        np.save(tmp_path / "x.npy", x.numpy())
        assert read_matrix(tmp_path / "x.npy").dtype == torch.float32


def test_big_endian_and_non_contiguous_numpy(tmp_path: Path) -> None:
    x = np.arange(24, dtype=">f4").reshape(4, 6)[:, ::2]
    np.save(tmp_path / "be.npy", x)
    np.testing.assert_array_equal(read_matrix(tmp_path / "be.npy").numpy(), x.astype("<f4"))


def test_read_index(tmp_path: Path) -> None:
    index = np.array([0, 0, 1, 2, 2, 2], dtype=np.int32)
    np.save(tmp_path / "c.npy", index)
    save_file({"caption_to_image": torch.from_numpy(index).long()}, tmp_path / "c.safetensors")
    torch.save(torch.from_numpy(index).to(torch.int16), tmp_path / "c.pt")
    for name in ("c.npy", "c.safetensors", "c.pt"):
        got = read_index(tmp_path / name)
        assert got.dtype == torch.int64 and got.tolist() == index.tolist(), name


def test_several_tensors_need_a_key(tmp_path: Path) -> None:
    save_file({"a": matrix(), "b": matrix()}, tmp_path / "two.safetensors")
    expect_error(lambda: read_matrix(tmp_path / "two.safetensors"), "two.safetensors", "holds 2 tensors", "'a', 'b'",
                 "key=")  # fmt: skip
    expect_error(lambda: read_matrix(tmp_path / "two.safetensors", key="c"), "key 'c' not found", "'a', 'b'")
    np.save(tmp_path / "one.npy", matrix().numpy())
    expect_error(lambda: read_matrix(tmp_path / "one.npy", key="a"), "holds a single array", "key 'a' not found")


# ── runs ─────────────────────────────────────────────────────────────────────────────────────────


def test_separate_files_with_several_captions_per_image(tmp_path: Path) -> None:
    image, text = matrix(3, 5), matrix(7, 5, seed=1)
    index = np.array([0, 1, 1, 2, 0, 2, 2])
    save_file({"image": image}, tmp_path / "img.safetensors")
    np.save(tmp_path / "txt.npy", text.numpy())
    np.save(tmp_path / "c2i.npy", index)
    paired = read_run(run(image=tmp_path / "img.safetensors", text=tmp_path / "txt.npy",
                          caption_to_image=tmp_path / "c2i.npy"))  # fmt: skip
    assert isinstance(paired, PairedEmbeddings)
    assert (paired.n_images, paired.n_captions, paired.dim) == (3, 7, 5)
    torch.testing.assert_close(paired.image, image)
    torch.testing.assert_close(paired.text, text)
    assert paired.caption_to_image.dtype == torch.int64 and paired.caption_to_image.tolist() == index.tolist()


def test_identity_pairing_without_caption_to_image(tmp_path: Path) -> None:
    torch.save(matrix(), tmp_path / "i.pt")
    torch.save(matrix(seed=1), tmp_path / "t.pt")
    paired = read_run(run(image=tmp_path / "i.pt", text=tmp_path / "t.pt"))
    assert paired.caption_to_image.tolist() == list(range(6))


def test_separate_files_may_hold_the_role_name(tmp_path: Path) -> None:
    # One file written with several tensors (e.g. also ids) is fine when one is called "image"/"text".
    save_file({"image": matrix(), "ids": torch.arange(6)}, tmp_path / "i.safetensors")
    save_file({"text": matrix(seed=1), "ids": torch.arange(6)}, tmp_path / "t.safetensors")
    paired = read_run(run(image=tmp_path / "i.safetensors", text=tmp_path / "t.safetensors"))
    torch.testing.assert_close(paired.image, matrix())
    save_file({"a": matrix(), "b": matrix()}, tmp_path / "ab.safetensors")
    expect_error(lambda: read_run(run(image=tmp_path / "ab.safetensors", text=tmp_path / "t.safetensors")),
                 "ab.safetensors", "none is named 'image'")  # fmt: skip


@pytest.mark.parametrize("suffix", [".safetensors", ".npz", ".pt"])
def test_combined_file(tmp_path: Path, suffix: str) -> None:
    image, text, index = matrix(2), matrix(5, seed=1), torch.tensor([1, 0, 1, 1, 0])
    path = tmp_path / f"both{suffix}"
    if suffix == ".safetensors":
        save_file({"image": image.bfloat16(), "text": text.bfloat16(), "caption_to_image": index}, path)
        image, text = image.bfloat16().float(), text.bfloat16().float()
    elif suffix == ".npz":
        np.savez(path, image=image.numpy(), text=text.numpy(), caption_to_image=index.numpy())
    else:
        torch.save({"image": image, "text": text, "caption_to_image": index, "note": "ignored"}, path)
    paired = read_run(run(embeddings=path))
    torch.testing.assert_close(paired.image, image, rtol=0, atol=0)
    torch.testing.assert_close(paired.text, text, rtol=0, atol=0)
    assert paired.caption_to_image.tolist() == index.tolist()


def test_combined_file_without_caption_to_image_is_identity(tmp_path: Path) -> None:
    save_file({"image": matrix(), "text": matrix(seed=1)}, tmp_path / "both.safetensors")
    assert read_run(run(embeddings=tmp_path / "both.safetensors")).caption_to_image.tolist() == list(range(6))


def test_paper_layout(tmp_path: Path) -> None:
    """The source paper's extract_features.py: a list of {"image": (1, D), "text": (C, D), "label_ids": int}."""
    counts = [5, 1, 3, 7]
    entries = [
        {"image": matrix(1, 8, seed=10 + i).bfloat16(), "text": matrix(c, 8, seed=20 + i).bfloat16(), "label_ids": 999}
        for i, c in enumerate(counts)
    ]
    torch.save(entries, tmp_path / "ROCO_test_features.pt")
    paired = read_run(run(embeddings=tmp_path / "ROCO_test_features.pt"))
    assert paired.image.shape == (4, 8) and paired.text.shape == (16, 8) and paired.image.dtype == torch.float32
    torch.testing.assert_close(paired.image, torch.cat([e["image"] for e in entries]).float(), rtol=0, atol=0)
    torch.testing.assert_close(paired.text, torch.cat([e["text"] for e in entries]).float(), rtol=0, atol=0)
    assert paired.caption_to_image.tolist() == [0] * 5 + [1] + [2] * 3 + [3] * 7
    # (D,) vectors instead of (1, D) rows are accepted too.
    torch.save([{"image": matrix(1, 8)[0], "text": matrix(1, 8, seed=1)[0]}], tmp_path / "flat.pt")
    assert read_run(run(embeddings=tmp_path / "flat.pt")).text.shape == (1, 8)


def test_paper_layout_errors(tmp_path: Path) -> None:
    def check(entries, *fragments: str) -> None:
        torch.save(entries, tmp_path / "p.pt")
        expect_error(lambda: read_run(run(embeddings=tmp_path / "p.pt")), "p.pt", *fragments)

    good = {"image": matrix(1, 4), "text": matrix(2, 4)}
    check([], "empty list")
    check([good, {"image": matrix(1, 4)}], "entry 1", "'image' (1, D) and 'text' (C, D)", "'image'")
    check([good, [1, 2]], "entry 1", "got list")
    check([good, {"image": matrix(1, 4), "text": torch.zeros(0, 4)}], "entry 1", "image has no caption")
    check([good, {"image": matrix(2, 4), "text": matrix(2, 4)}], "entry 1 'image'", "expected shape (1, D)", "(2, 4)")
    check([good, {"image": matrix(1, 5), "text": matrix(2, 5)}], "entry 1", "dim 5/5", "entry 0's 4/4")
    check([good, {"image": matrix(1, 4), "text": torch.ones(2, 4, dtype=torch.int64)}], "entry 1 'text'",
          "floating point", "int64")  # fmt: skip
    bad = matrix(2, 4)
    bad[1, 0] = float("nan")
    check([good, good, {"image": matrix(1, 4), "text": bad}], "captions", "1 of 6 rows", "NaN or Inf", "row 5")


# ── malicious pickles ──────────────────────────────────────────────────────────────────────────────


class Exploit:
    """Unpickling this runs a shell command: what a hostile .pt file can do under weights_only=False."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_the_exploit_is_real(tmp_path: Path) -> None:
    # Control: plain unpickling does execute the payload, so the refusal below is meaningful.
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(Exploit(marker)))
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle-2", "pickle-default"])
def test_malicious_pickle_is_refused_not_executed(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"image": Exploit(marker), "text": matrix()}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2 if writer == "pickle-2" else None))
    # torch's unpickler names the blocked global when it gets that far; with pickle protocol ≥ 4 it stops
    # earlier, at the first opcode it does not implement. Either way: refused, nothing executed.
    expected = ("refused", "system") if writer != "pickle-default" else ("unreadable .pt file", "arbitrary pickles")
    expect_error(lambda: read_run(run(embeddings=path)), "evil.pt", "weights_only=True", *expected)
    expect_error(lambda: read_matrix(path), "evil.pt", "weights_only=True", *expected)
    assert not marker.exists(), "the payload ran"


def test_pickled_numpy_object_array_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    array = np.empty(1, dtype=object)
    array[0] = Exploit(marker)
    np.save(tmp_path / "evil.npy", array, allow_pickle=True)
    expect_error(lambda: read_matrix(tmp_path / "evil.npy"), "evil.npy", "Python objects", "refused")
    assert not marker.exists()


# ── bad matrices ───────────────────────────────────────────────────────────────────────────────────


def save_npy(tmp_path: Path, array, name: str = "x.npy") -> Path:
    np.save(tmp_path / name, np.asarray(array))
    return tmp_path / name


def test_not_two_dimensional(tmp_path: Path) -> None:
    expect_error(lambda: read_matrix(save_npy(tmp_path, np.zeros(4, np.float32))), "x.npy", "2-D", "shape (4,)")
    expect_error(lambda: read_matrix(save_npy(tmp_path, np.zeros((2, 3, 4), np.float32))), "shape (2, 3, 4)")


def test_empty(tmp_path: Path) -> None:
    expect_error(lambda: read_matrix(save_npy(tmp_path, np.zeros((0, 4), np.float32))), "x.npy", "empty", "(0, 4)")
    expect_error(lambda: read_matrix(save_npy(tmp_path, np.zeros((3, 0), np.float32))), "empty", "(3, 0)")


def test_non_finite_rows_are_counted_and_the_first_is_named(tmp_path: Path) -> None:
    x = matrix(10, 4).numpy()
    x[3, 1], x[3, 2], x[7, 0] = np.nan, np.inf, -np.inf
    expect_error(
        lambda: read_matrix(save_npy(tmp_path, x)), "x.npy", "2 of 10 rows", "non-finite (NaN or Inf)", "first: row 3"
    )


def test_float64_beyond_float32_is_named_as_overflow_not_non_finite(tmp_path: Path) -> None:
    x = np.ones((3, 2))
    x[2, 0] = 1e300
    expect_error(lambda: read_matrix(save_npy(tmp_path, x)), "x.npy", "values up to 1e+300", "overflow float32")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_whose_squares_overflow_float32_are_refused(tmp_path: Path, dtype) -> None:
    x = (np.random.default_rng(0).standard_normal((64, 8)) * 1e20).astype(dtype)
    expect_error(lambda: read_matrix(save_npy(tmp_path, x)), "x.npy", "64 × 8", "overflow float32", "rescale")
    # Large but safe values are read as they are.
    assert torch.equal(read_matrix(save_npy(tmp_path, x / 1e8)), torch.from_numpy(x / 1e8).float())


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_])
def test_non_float_dtype(tmp_path: Path, dtype) -> None:
    expect_error(lambda: read_matrix(save_npy(tmp_path, np.ones((3, 2), dtype))), "x.npy", "floating point",
                 np.dtype(dtype).name)  # fmt: skip


def test_complex_dtype(tmp_path: Path) -> None:
    expect_error(lambda: read_matrix(save_npy(tmp_path, np.ones((3, 2), np.complex64))), "unsupported array dtype")


def test_pt_holding_no_tensor(tmp_path: Path) -> None:
    torch.save([1, 2, 3], tmp_path / "list.pt")
    expect_error(lambda: read_matrix(tmp_path / "list.pt"), "list.pt", "expected a tensor/array, got list")


# ── bad pairing ────────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def towers(tmp_path: Path) -> tuple[Path, Path]:
    return save_npy(tmp_path, matrix(3, 4).numpy(), "img.npy"), save_npy(tmp_path, matrix(5, 4).numpy(), "txt.npy")


def test_different_widths_are_paired(tmp_path: Path) -> None:
    """Towers without a shared projection are read; the audit then reports the cross-space metrics only."""
    image, text = save_npy(tmp_path, matrix(3, 4).numpy(), "i.npy"), save_npy(tmp_path, matrix(3, 6).numpy(), "t.npy")
    pairs = read_run(run(image=image, text=text))
    assert pairs.image.shape == (3, 4) and pairs.text.shape == (3, 6)
    save_file({"image": matrix(3, 4), "text": matrix(3, 6)}, tmp_path / "both.safetensors")
    pairs = read_run(run(embeddings=tmp_path / "both.safetensors"))
    assert pairs.image.shape == (3, 4) and pairs.text.shape == (3, 6)
    assert pairs.caption_to_image.tolist() == [0, 1, 2]


def test_count_mismatch_without_caption_to_image(towers) -> None:
    image, text = towers
    expect_error(lambda: read_run(run(image=image, text=text)), "3 images but 5 captions", "no caption_to_image")


@pytest.mark.parametrize(
    ("index", "fragments"),
    [
        ([0, 1, 2, 0], ("has 4 entries but there are 5 captions",)),
        ([0, 1, 2, 3, 0], ("caption_to_image[3] = 3 is out of range for 3 images", "1 entries outside [0, 3)")),
        ([0, 1, -1, 2, 0], ("caption_to_image[2] = -1 is out of range",)),
        ([0, 0, 2, 2, 0], ("1 of 3 images have no caption", "first: image 1")),
        ([0.0, 1.0, 2.0, 0.0, 1.0], ("must be integers", "float64")),
        ([[0, 1, 2, 0, 1]], ("must be 1-D", "(1, 5)")),
    ],
)
def test_bad_caption_to_image(tmp_path: Path, towers, index, fragments) -> None:
    image, text = towers
    c2i = save_npy(tmp_path, np.array(index), "c2i.npy")
    expect_error(lambda: read_run(run(image=image, text=text, caption_to_image=c2i)), "c2i.npy", *fragments)


def test_combined_file_problems(tmp_path: Path) -> None:
    save_file({"image": matrix(), "txt": matrix()}, tmp_path / "keys.safetensors")
    expect_error(lambda: read_run(run(embeddings=tmp_path / "keys.safetensors")), "missing key 'text'", "'txt'")
    np.save(tmp_path / "one.npy", matrix().numpy())
    expect_error(lambda: read_run(run(embeddings=tmp_path / "one.npy")), "one.npy", "holds one matrix")
    torch.save(matrix(), tmp_path / "tensor.pt")
    expect_error(lambda: read_run(run(embeddings=tmp_path / "tensor.pt")), "expected named tensors 'image' and 'text'")
    save_file(
        {"image": matrix(2), "text": matrix(3), "caption_to_image": torch.tensor([0, 1, 2])}, tmp_path / "r.safetensors"
    )
    expect_error(lambda: read_run(run(embeddings=tmp_path / "r.safetensors")), "r.safetensors [key 'caption_to_image']",
                 "out of range for 2 images")  # fmt: skip


# ── unreadable files ───────────────────────────────────────────────────────────────────────────────


def test_truncated_npy(tmp_path: Path) -> None:
    path = save_npy(tmp_path, matrix(50, 8).numpy())
    path.write_bytes(path.read_bytes()[:-100])
    expect_error(lambda: read_matrix(path), "x.npy", "unreadable .npy file")


def test_random_bytes(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    cases = [
        ("x.safetensors", noise, "unreadable .safetensors file"),
        ("x.pt", noise, "unreadable .pt file"),
        ("x.npz", noise, "unreadable .npz file"),
        ("zip.npz", b"PK\x03\x04" + noise, "unreadable .npz file"),  # right magic, corrupt archive
        ("x.npy", noise, "unreadable .npy file"),
        ("hdr.npy", b"\x93NUMPY" + noise, "unreadable .npy file"),  # right magic, corrupt header
    ]
    for name, content, fragment in cases:
        (tmp_path / name).write_bytes(content)
        expect_error(lambda name=name: read_matrix(tmp_path / name), name, fragment)


def test_empty_file(tmp_path: Path) -> None:
    for name in ("e.safetensors", "e.pt", "e.npy", "e.npz"):
        (tmp_path / name).write_bytes(b"")
        expect_error(lambda name=name: read_matrix(tmp_path / name), name, "unreadable")


def test_unsupported_extension_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("1,2\n")
    expect_error(lambda: read_matrix(tmp_path / "x.csv"), "x.csv", "unsupported file type '.csv'", ".safetensors")
    (tmp_path / "noext").write_text("1")
    expect_error(lambda: read_matrix(tmp_path / "noext"), "unsupported file type '(none)'")
    expect_error(lambda: read_matrix(tmp_path / "gone.npy"), "gone.npy", "file not found")
