"""Embedding files for the audit: read, validate, and pair image and caption embeddings.

Formats (chosen by extension, case-insensitive):

* ``.safetensors`` — one or more named tensors (``safetensors.torch.load_file``).
* ``.npy`` — one array (``allow_pickle=False``); ``.npz`` — one or more named arrays (``allow_pickle=False``).
* ``.pt`` / ``.pth`` — loaded **only** with ``torch.load(weights_only=True)``: a pickle that would construct
  arbitrary Python objects (and so could run code) is refused, never executed. Convert such files to
  ``.safetensors`` in a trusted environment.

What a manifest run points at (:class:`~torchspectral.audit.manifest.RunSpec`):

* ``image`` + ``text`` (+ optional ``caption_to_image``): one matrix per file. A file holding several
  tensors is accepted when one of them is named ``image`` (resp. ``text``, ``caption_to_image``).
* ``embeddings``: one file with both towers, either

  - named tensors ``image`` (N, d), ``text`` (M, d) and optionally ``caption_to_image`` (M,) in a
    ``.safetensors``, ``.npz`` or ``.pt`` file (a dict) — what ``torchspectral embed`` writes; or
  - the source paper's layout (``extract_features.py`` of github.com/iamalegambetti/medical-vlms-assessment):
    a ``.pt`` holding a list with one dict per image, ``{"image": (1, D), "text": (C, D), "label_ids": int}``
    with C ≥ 1 captions per image (C may vary). Images are stacked to (N, D), captions concatenated to
    (M, D) in order, and ``caption_to_image`` records which entry each caption came from. Other keys
    (``label_ids``) are ignored. (The paper's own analysis used only each image's first caption; here
    every caption counts, as docs/definitions.md#retrieval requires.)

Validation (each failure is an :class:`~torchspectral.audit.errors.AuditInputError` naming the file):
matrices must be 2-D, non-empty, floating point, finite, and small enough that their sums of squares stay
finite in float32 (in which the audit computes); image and text may differ in width (only CKA and SVCCA are then
defined); ``caption_to_image`` must be 1-D integers, one per caption, each in ``[0, N)``, and every image must have
at least one caption. Without ``caption_to_image`` the pairing is the identity and N must equal M.
float16/bfloat16/float64 inputs are converted to float32.
"""

from __future__ import annotations

import math
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchspectral.audit.errors import AuditInputError
from torchspectral.audit.manifest import RunSpec

__all__ = ["SUFFIXES", "PairedEmbeddings", "read_index", "read_matrix", "read_run"]

SUFFIXES = (".safetensors", ".npy", ".npz", ".pt", ".pth")


@dataclass(frozen=True)
class PairedEmbeddings:
    """Image and caption embeddings of one run, and which image each caption describes.

    Shape:
        image: (N, d) float32. text: (M, d) float32, M ≥ N. caption_to_image: (M,) int64, values in
        [0, N), every image at least once (identity ``arange(N)`` when each image has one caption).
    """

    image: torch.Tensor
    text: torch.Tensor
    caption_to_image: torch.Tensor

    @property
    def n_images(self) -> int:
        return self.image.shape[0]

    @property
    def n_captions(self) -> int:
        return self.text.shape[0]

    @property
    def dim(self) -> int:
        return self.image.shape[1]


def read_matrix(path: str | Path, key: str | None = None) -> torch.Tensor:
    """One embedding matrix from a file, validated and converted to float32 (rows = items).

    ``key`` names the tensor in a file that holds several (``.safetensors``, ``.npz``, a dict in ``.pt``);
    a file holding a single tensor needs no key.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
        >>> np.save(path, np.ones((3, 4), dtype=np.float16))
        >>> read_matrix(path).dtype, tuple(read_matrix(path).shape)
        (torch.float32, (3, 4))
    """
    path = Path(path)
    return _matrix(_select(_load(path), path, key, role=None), _describe(path, key))


def read_index(path: str | Path, key: str | None = None) -> torch.Tensor:
    """A 1-D integer ``caption_to_image`` vector from a file, as int64 (range is checked by :func:`read_run`)."""
    path = Path(path)
    return _index(_select(_load(path), path, key, role=None), _describe(path, key))


def read_run(spec: RunSpec) -> PairedEmbeddings:
    """Read and pair the embeddings of one manifest run (see the module docstring for the layouts)."""
    if spec.embeddings is not None:
        return _read_combined(Path(spec.embeddings))
    if spec.image is None or spec.text is None:
        raise AuditInputError(f"{spec.name}: a run needs 'image' + 'text' files or one 'embeddings' file")
    image_path, text_path = Path(spec.image), Path(spec.text)
    image = _matrix(_select(_load(image_path), image_path, None, role="image"), str(image_path))
    text = _matrix(_select(_load(text_path), text_path, None, role="text"), str(text_path))
    index = None
    if spec.caption_to_image is not None:
        index_path = Path(spec.caption_to_image)
        index = _index(_select(_load(index_path), index_path, None, role="caption_to_image"), str(index_path))
    return _pair(
        image,
        text,
        index,
        image_where=str(image_path),
        text_where=str(text_path),
        index_where=str(spec.caption_to_image) if index is not None else None,
    )


# ── loading ────────────────────────────────────────────────────────────────────────────────────────


def _describe(path: Path, key: str | None) -> str:
    return f"{path}" if key is None else f"{path} [key {key!r}]"


def _load(path: Path) -> Any:
    """The raw content: a dict of name → tensor/array, a single tensor/array, or (``.pt``) any safe object."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise AuditInputError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r} (supported: {', '.join(SUFFIXES)})"
        )
    if not path.is_file():
        raise AuditInputError(f"{path}: file not found")
    if suffix == ".safetensors":
        return _load_safetensors(path)
    if suffix in (".npy", ".npz"):
        return _load_numpy(path)
    return _load_torch(path)


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as error:  # SafetensorError, OSError, …: a corrupt file, whatever the parser says
        raise AuditInputError(f"{path}: unreadable .safetensors file: {_first_line(error)}") from None


def _load_numpy(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    # Without its magic bytes np.load treats a file as a pickle; say "not a .npy/.npz file" instead.
    # (np.load's own test: .npy magic, or a zip local-file / empty-archive header for .npz.)
    magics = (b"\x93NUMPY",) if path.suffix.lower() == ".npy" else (b"PK\x03\x04", b"PK\x05\x06")
    try:
        with path.open("rb") as handle:
            head = handle.read(6)
    except OSError as error:
        raise AuditInputError(f"{path}: cannot read: {error.strerror or error}") from None
    if not head.startswith(magics):
        raise AuditInputError(f"{path}: unreadable {path.suffix} file: not in {path.suffix.lower()} format")
    try:
        # allow_pickle=False: object arrays are pickles and could run code.
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return {name: loaded[name] for name in loaded.files}
        return loaded
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise AuditInputError(f"{path}: holds Python objects (a pickled object array), refused") from None
        raise AuditInputError(f"{path}: unreadable {path.suffix} file: {_first_line(error)}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise AuditInputError(f"{path}: unreadable {path.suffix} file: {_first_line(error)}") from None


def _load_torch(path: Path) -> Any:
    try:
        # weights_only=True, always: the unpickler builds tensors, containers and primitives only, so a
        # malicious file cannot execute code. Never fall back to weights_only=False.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        detail = _unpickler_detail(str(error))
        found = re.search(r"GLOBAL (\S+)", detail)
        if found:
            raise AuditInputError(
                f"{path}: refused: holds Python objects ({found.group(1)}) that torch.load(weights_only=True) does "
                "not allow; arbitrary pickles are never loaded — re-save plain tensors or use .safetensors"
            ) from None
        raise AuditInputError(
            f"{path}: unreadable .pt file: torch.load(weights_only=True) failed ({detail}); only torch.save files "
            "of tensors, dicts, lists and numbers are read, arbitrary pickles never"
        ) from None
    except Exception as error:  # RuntimeError (bad zip), EOFError (truncated), …
        raise AuditInputError(f"{path}: unreadable {path.suffix} file: {_first_line(error)}") from None


def _unpickler_detail(message: str) -> str:
    """The informative line of torch's multi-paragraph weights_only error (the rest is generic advice)."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation", "Re-running")
    for line in message.splitlines():
        line = line.strip()
        if line and not line.startswith(boilerplate):
            return line.removeprefix("WeightsUnpickler error:").strip() or line
    return "not a weights-only checkpoint"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _select(content: Any, path: Path, key: str | None, role: str | None) -> Any:
    """One tensor/array out of the loaded content: by ``key``, the only one, or the one named ``role``."""
    if not isinstance(content, Mapping):
        if key is not None:
            raise AuditInputError(f"{path}: holds a single {_kind(content)}, not named tensors; key {key!r} not found")
        return content
    names = list(content)
    if key is not None:
        if key not in content:
            raise AuditInputError(f"{path}: key {key!r} not found (keys: {_names(names)})")
        return content[key]
    if len(names) == 1:
        return content[names[0]]
    if role is not None and role in content:
        return content[role]
    if not names:
        raise AuditInputError(f"{path}: holds no tensors")
    wanted = f"none is named {role!r}" if role else "name one with key="
    raise AuditInputError(f"{path}: holds {len(names)} tensors ({_names(names)}); {wanted}")


def _names(names: list[Any]) -> str:
    shown = ", ".join(repr(name) for name in names[:8])
    return shown + (f", … ({len(names)} in all)" if len(names) > 8 else "")


def _kind(value: Any) -> str:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"array of shape {tuple(value.shape)}"
    return type(value).__name__


# ── validation ────────────────────────────────────────────────────────────────────────────────────


def _as_tensor(value: Any, where: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise AuditInputError(f"{where}: unsupported array dtype {value.dtype}")
        # from_numpy cannot take non-native byte order or some non-contiguous layouts; a copy can.
        return torch.from_numpy(np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("=")))
    raise AuditInputError(f"{where}: expected a tensor/array, got {_kind(value)}")


def _matrix(value: Any, where: str) -> torch.Tensor:
    """Validate one embedding matrix and return it as contiguous float32."""
    tensor = _as_tensor(value, where)
    if tensor.ndim != 2:
        raise AuditInputError(f"{where}: expected a 2-D (items × dim) matrix, got shape {tuple(tensor.shape)}")
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise AuditInputError(f"{where}: empty matrix (shape {tuple(tensor.shape)})")
    if not tensor.dtype.is_floating_point:
        raise AuditInputError(f"{where}: embeddings must be floating point, got dtype {_dtype(tensor.dtype)}")
    bad = ~torch.isfinite(tensor).all(dim=1)
    if bool(bad.any()):
        rows = bad.nonzero().flatten()
        raise AuditInputError(
            f"{where}: {rows.numel()} of {tensor.shape[0]} rows contain non-finite (NaN or Inf) values "
            f"(first: row {int(rows[0])})"
        )
    # The audit computes in float32 (bf16/fp16 from GPU extraction are upcast exactly). Its largest sums are
    # sums of squares over every entry (traces, norms, Grams): they must stay finite in float32, so values
    # beyond this bound are refused here, naming the cause, instead of turning into Inf/NaN in some metric.
    largest = float(tensor.abs().amax())
    limit = float32_safe_magnitude(tensor.shape[0] * tensor.shape[1])
    if largest > limit:
        raise AuditInputError(
            f"{where}: values up to {largest:.3g}: their squares summed over {tensor.shape[0]} × {tensor.shape[1]} "
            f"entries overflow float32, in which the audit computes (largest safe magnitude here {limit:.3g}); "
            "rescale the embeddings"
        )
    return tensor.to(torch.float32).contiguous()


def float32_safe_magnitude(entries: int) -> float:
    """The largest |value| whose squares, summed over ``entries`` values, stay 256× below float32's maximum."""
    return math.sqrt(torch.finfo(torch.float32).max / 256.0 / max(entries, 1))


def _index(value: Any, where: str) -> torch.Tensor:
    tensor = _as_tensor(value, where)
    if tensor.ndim != 1:
        raise AuditInputError(
            f"{where}: caption_to_image must be 1-D (one image index per caption), got shape {tuple(tensor.shape)}"
        )
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        # A float vector of whole numbers would work, but it usually means a column was mangled on the way
        # (pandas turns an int column with gaps into float); refuse rather than guess.
        raise AuditInputError(f"{where}: caption_to_image must be integers, got dtype {_dtype(tensor.dtype)}")
    # uint64 values beyond int64 wrap to negatives here, which the range check then reports.
    return tensor.to(torch.int64).contiguous()


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _pair(
    image: torch.Tensor,
    text: torch.Tensor,
    index: torch.Tensor | None,
    *,
    image_where: str,
    text_where: str,
    index_where: str | None,
) -> PairedEmbeddings:
    # Image and text may differ in width (towers without a shared projection): the audit then reports the
    # metrics that compare two spaces (CKA, SVCCA) and marks the others n/a.
    n, m = image.shape[0], text.shape[0]
    if index is None:
        if n != m:
            where = image_where if image_where == text_where else f"{image_where} / {text_where}"
            raise AuditInputError(
                f"{where}: {n} images but {m} captions and no caption_to_image to say which caption describes "
                "which image"
            )
        return PairedEmbeddings(image, text, torch.arange(n, dtype=torch.int64))
    where = index_where or image_where
    if index.shape[0] != m:
        raise AuditInputError(f"{where}: caption_to_image has {index.shape[0]} entries but there are {m} captions")
    outside = ((index < 0) | (index >= n)).nonzero().flatten()
    if outside.numel():
        first = int(outside[0])
        raise AuditInputError(
            f"{where}: caption_to_image[{first}] = {int(index[first])} is out of range for {n} images "
            f"({outside.numel()} entries outside [0, {n}))"
        )
    uncaptioned = (torch.bincount(index, minlength=n) == 0).nonzero().flatten()
    if uncaptioned.numel():
        raise AuditInputError(
            f"{where}: {uncaptioned.numel()} of {n} images have no caption (first: image {int(uncaptioned[0])})"
        )
    return PairedEmbeddings(image, text, index)


# ── combined files ────────────────────────────────────────────────────────────────────────────────


def _read_combined(path: Path) -> PairedEmbeddings:
    if path.suffix.lower() == ".npy":
        raise AuditInputError(
            f"{path}: a .npy file holds one matrix; 'embeddings' needs a file with both towers "
            "(.safetensors, .npz or .pt) — or use 'image' + 'text'"
        )
    content = _load(path)
    if isinstance(content, (list, tuple)):
        return _read_paper_layout(content, path)
    if not isinstance(content, Mapping):
        raise AuditInputError(
            f"{path}: expected named tensors 'image' and 'text' (or the paper's list of per-image dicts), "
            f"got {_kind(content)}"
        )
    missing = [key for key in ("image", "text") if key not in content]
    if missing:
        raise AuditInputError(
            f"{path}: missing key {missing[0]!r} (keys: {_names(list(content))}); a combined file needs 'image' and "
            "'text' and optionally 'caption_to_image'"
        )
    image = _matrix(content["image"], _describe(path, "image"))
    text = _matrix(content["text"], _describe(path, "text"))
    index = None
    if "caption_to_image" in content:
        index = _index(content["caption_to_image"], _describe(path, "caption_to_image"))
    return _pair(
        image, text, index, image_where=str(path), text_where=str(path), index_where=_describe(path, "caption_to_image")
    )


def _read_paper_layout(entries: list[Any] | tuple[Any, ...], path: Path) -> PairedEmbeddings:
    """The source paper's ``[{"image": (1, D), "text": (C, D), ...}, ...]``: one entry per image."""
    if not entries:
        raise AuditInputError(f"{path}: empty list: no images")
    images, texts, counts = [], [], []
    for number, entry in enumerate(entries):
        where = f"{path}: entry {number}"
        if not isinstance(entry, Mapping) or "image" not in entry or "text" not in entry:
            found = f"keys {_names(list(entry))}" if isinstance(entry, Mapping) else _kind(entry)
            raise AuditInputError(
                f"{where}: expected a dict with 'image' (1, D) and 'text' (C, D) tensors, got {found}"
            )
        image = _as_tensor(entry["image"], f"{where} 'image'")
        text = _as_tensor(entry["text"], f"{where} 'text'")
        # A single vector may be saved as (D,) instead of (1, D).
        image = image.reshape(1, -1) if image.ndim == 1 else image
        text = text.reshape(1, -1) if text.ndim == 1 else text
        if image.ndim != 2 or image.shape[0] != 1:
            raise AuditInputError(f"{where} 'image': expected shape (1, D), got {tuple(image.shape)}")
        if text.ndim != 2:
            raise AuditInputError(f"{where} 'text': expected shape (C, D), got {tuple(text.shape)}")
        if text.shape[0] == 0:
            raise AuditInputError(f"{where}: image has no caption ('text' has shape {tuple(text.shape)})")
        if number and (image.shape[1] != images[0].shape[1] or text.shape[1] != texts[0].shape[1]):
            raise AuditInputError(
                f"{where}: dimension mismatch: dim {image.shape[1]}/{text.shape[1]} (image/text) differs from "
                f"entry 0's {images[0].shape[1]}/{texts[0].shape[1]}"
            )
        for name, tensor in (("image", image), ("text", text)):
            if not tensor.dtype.is_floating_point:
                raise AuditInputError(
                    f"{where} '{name}': embeddings must be floating point, got dtype {_dtype(tensor.dtype)}"
                )
        # Cast per entry: entries may mix dtypes (bf16 on GPU runs) and cat would otherwise promote them.
        images.append(image.to(torch.float32))
        texts.append(text.to(torch.float32))
        counts.append(text.shape[0])
    image = _matrix(torch.cat(images), f"{path} (images, one row per entry)")
    text = _matrix(torch.cat(texts), f"{path} (captions, concatenated over entries)")
    index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return _pair(image, text, index, image_where=str(path), text_where=str(path), index_where=str(path))
