"""`torchspectral embed`: image and caption embeddings from a local transformers model, for the audit.

    torchspectral embed --model ./clip-vit-base-patch32 --data ./roco-test --out roco_clip.safetensors

Model (``--model DIR``): a *local* folder as written by ``save_pretrained`` (or ``huggingface-cli download
REPO --local-dir DIR``), holding a dual encoder with ``get_image_features`` / ``get_text_features`` (CLIP,
SigLIP, SigLIP 2, ALIGN, MetaCLIP, …) and its processor or image processor + tokenizer. Everything is
loaded with ``local_files_only=True``: this command never downloads, so a hub id such as
``openai/clip-vit-base-patch32`` is refused with a hint instead of silently fetching (or, offline,
silently building an empty tokenizer).

Data (``--data DIR``): a folder with image files and one caption table, ``captions.csv``,
``captions.jsonl`` or ``captions.parquet`` (parquet needs pyarrow or pandas). ``--data`` may also name the
table itself. Each row pairs one image (path relative to the table's folder, or absolute) with one
caption; an image may appear in several rows. Every image must lie inside the table's folder once ``..`` and
symbolic links are resolved, so a caption table cannot make ``embed`` read files elsewhere; images kept
elsewhere on purpose need ``--allow-outside-data``. Column names default to ``image`` and ``caption``
(``--image-column``, ``--caption-column``). The two common layouts:

* ROCO-style, one row per image::

      image,caption
      PMC1234_fig1.jpg,"Axial CT showing a 3 cm mass in the left lobe."
      PMC1235_fig2.jpg,"Panoramic radiograph after orthodontic treatment."

* MIMIC-CXR / COCO-style, one row per caption or report, several rows per image (``--image-column
  path --caption-column report`` for these headers)::

      path,report
      files/p10/s5001/view1.jpg,"No acute cardiopulmonary process."
      files/p10/s5001/view1.jpg,"Lungs are clear. Heart size normal."
      files/p10/s5002/view1.jpg,"Small left pleural effusion."

  The first CSV line is the header. A caption holding commas is best quoted (``"a dog, running"``, inner
  quotes doubled), but unquoted caption lists (Flickr/Karpathy style, ``1000268201.jpg,A child , climbing .``)
  are read whole too: in a table of exactly the two named columns, a row with more fields than columns is
  split at its first comma (its last when the caption column comes first), so the caption keeps every comma.
  Rows that stay ambiguous (more fields in a table with other columns, a caption that opens a quote and goes
  on after it closes, a quote never closed) are refused with their line, never cut.

  In ``captions.jsonl`` a row may also give a list of captions: ``{"image": "a.jpg", "caption": ["…", "…"]}``.

Images are numbered in order of first appearance, captions in row order. Output (``--out FILE``, one
``.safetensors``, written atomically, so a failure never leaves a partial file; an existing file is replaced
only with ``--force``, a folder never): ``image`` (N, d) and ``text`` (M, d) float32, L2-normalised rows, and
``caption_to_image`` (M,) int64 — what :func:`torchspectral.audit.readers.read_run` reads from a manifest
run with ``embeddings = "FILE"``. The file's metadata records the model folder, the table and the counts.

Computation: ``torch.inference_mode``, batches of ``--batch-size``; bfloat16 on CUDA, float32 on CPU;
features are normalised in float32. Captions are tokenised with truncation to the model's maximum text
length; SigLIP-family models get ``padding="max_length"`` (how they were trained, and their pooling
depends on it), others pad to the longest caption of the batch.
"""

from __future__ import annotations

import argparse
import csv
import errno
import inspect
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from torchspectral.audit.errors import AuditInputError
from torchspectral.audit.readers import PairedEmbeddings

__all__ = ["CAPTION_TABLES", "CaptionTable", "add_embed_parser", "embed", "read_captions", "run_embed"]

CAPTION_TABLES = ("captions.csv", "captions.jsonl", "captions.parquet")
_TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
# A tokenizer this small is the placeholder transformers builds when the tokenizer files are missing.
_MIN_TOKENIZER_SIZE = 10


@dataclass(frozen=True)
class CaptionTable:
    """Images (resolved paths, order of first appearance), captions (row order) and their pairing."""

    source: Path
    images: tuple[Path, ...]
    captions: tuple[str, ...]
    caption_to_image: tuple[int, ...]


# ── captions ──────────────────────────────────────────────────────────────────────────────────────


def read_captions(
    data: str | Path, *, image_column: str = "image", caption_column: str = "caption", allow_outside_data: bool = False
) -> CaptionTable:
    """Read the caption table of ``data`` (a folder holding one of :data:`CAPTION_TABLES`, or the table itself).

    Args:
        data: the data folder, or the caption table itself (its folder is then the data folder).
        image_column, caption_column: the table's columns holding image paths and captions.
        allow_outside_data: read images that resolve (after ``..`` and symbolic links) outside the data
            folder; off by default, so a caption table cannot point ``embed`` at arbitrary files.

    Returns:
        The table, with resolved image paths.

    Raises:
        AuditInputError: no or several tables, a missing column, an empty or ambiguous row, an image outside
            the data folder, or a missing image; each named with its line (or row).
    """
    source = _find_table(Path(data).expanduser())
    root = source.parent.resolve()
    rows = list(_rows(source, image_column, caption_column))
    if not rows:
        raise AuditInputError(f"{source}: no rows: the caption table is empty")
    _check_columns(source, rows[0][1].keys(), image_column, caption_column)

    index_of: dict[Path, int] = {}
    images: list[Path] = []
    captions: list[str] = []
    caption_to_image: list[int] = []
    for where, row in rows:
        name = row.get(image_column)
        if not isinstance(name, str) or not name.strip():
            raise AuditInputError(f"{source}: {where}: empty or missing {image_column!r}")
        texts = row.get(caption_column)
        texts = texts if isinstance(texts, list) else [texts]
        if not texts or not all(isinstance(text, str) and text.strip() for text in texts):
            raise AuditInputError(f"{source}: {where}: empty or missing {caption_column!r}")
        path = Path(name.strip()).expanduser()
        # Resolved, so "a.png" and "./a.png" are one image (MIMIC rows repeat the same file).
        path = (path if path.is_absolute() else source.parent / path).resolve()
        if not allow_outside_data and not path.is_relative_to(root):
            raise AuditInputError(
                f"{source}: {where}: image {name.strip()!r} resolves to {path}, outside the data folder {root}; "
                "pass --allow-outside-data to read images from elsewhere"
            )
        if path not in index_of:
            if not path.is_file():
                raise AuditInputError(f"{source}: {where}: image file not found: {path}")
            index_of[path] = len(images)
            images.append(path)
        for text in texts:
            captions.append(text.strip())
            caption_to_image.append(index_of[path])
    return CaptionTable(source, tuple(images), tuple(captions), tuple(caption_to_image))


def _find_table(data: Path) -> Path:
    if data.is_file():
        if data.suffix.lower() not in (".csv", ".jsonl", ".parquet"):
            raise AuditInputError(f"{data}: caption table must be .csv, .jsonl or .parquet")
        return data
    if not data.exists():
        raise AuditInputError(f"{data}: data folder not found")
    found = [data / name for name in CAPTION_TABLES if (data / name).is_file()]
    if not found:
        raise AuditInputError(f"{data}: no caption table: expected one of {', '.join(CAPTION_TABLES)}")
    if len(found) > 1:
        names = ", ".join(path.name for path in found)
        raise AuditInputError(f"{data}: several caption tables ({names}); keep one, or pass the table itself as --data")
    return found[0]


def _check_columns(source: Path, columns: Sequence[str], image_column: str, caption_column: str) -> None:
    for column, option in ((image_column, "--image-column"), (caption_column, "--caption-column")):
        if column not in columns:
            shown = ", ".join(repr(name) for name in columns)
            raise AuditInputError(f"{source}: no column {column!r} (columns: {shown}; choose with {option})")


def _rows(source: Path, image_column: str, caption_column: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) pairs; ``where`` names the line (CSV, JSONL) or row (parquet) for error messages."""
    suffix = source.suffix.lower()
    try:
        if suffix == ".csv":
            # utf-8-sig: spreadsheets often write a byte-order mark that would otherwise join the first header.
            with source.open(newline="", encoding="utf-8-sig") as handle:
                lines = list(handle)  # newline="": each line keeps its ending as written
            yield from _csv_rows(source, lines, image_column, caption_column)
        elif suffix == ".jsonl":
            with source.open(encoding="utf-8-sig") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise AuditInputError(f"{source}: line {number}: invalid JSON: {error.msg}") from None
                    if not isinstance(row, dict):
                        raise AuditInputError(
                            f"{source}: line {number}: expected a JSON object, got {type(row).__name__}"
                        )
                    yield f"line {number}", row
        else:
            for number, row in enumerate(_parquet_rows(source)):
                yield f"row {number}", row
    except UnicodeDecodeError as error:
        raise AuditInputError(f"{source}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except csv.Error as error:
        raise AuditInputError(f"{source}: invalid CSV: {error}") from None


def _csv_rows(
    source: Path, lines: list[str], image_column: str, caption_column: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of a CSV whose first line is the header; unquoted captions with commas kept whole.

    A row with as many fields as the header (or fewer: the missing ones are ``None``) is read as CSV. A row
    with more fields is an unquoted caption holding commas; :func:`_unquoted_row` splits its line again.
    """
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    end = reader.line_num
    for fields in reader:
        start, end = end, reader.line_num
        if not fields:  # a blank line
            continue
        where = f"line {start + 1}"
        record = "".join(lines[start:end])
        if end == len(lines) and _ends_inside_quotes(record):
            raise AuditInputError(
                f"{source}: {where}: unclosed quote: this field runs to the end of the file, swallowing every "
                'later row; close it (inner quotes doubled: "") or remove the opening quote'
            )
        if len(fields) > len(header):
            fields = _unquoted_row(source, where, header, fields, record, image_column, caption_column)
        row: dict[str, Any] = dict.fromkeys(header)
        row.update(zip(header, fields, strict=False))  # fewer fields than columns: the rest stay None
        if any(isinstance(value, str) and value.strip() for value in row.values()):
            yield where, row


def _unquoted_row(
    source: Path, where: str, header: list[str], fields: list[str], record: str, image_column: str,
    caption_column: str,
) -> list[str]:  # fmt: skip
    """The fields of a row with more fields than ``header``: an unquoted caption holding commas.

    Only a table of exactly the image and caption columns is unambiguous: the image is before the line's first
    comma (after its last when the caption column comes first), and the caption is the rest, verbatim.
    """
    _check_columns(source, header, image_column, caption_column)
    quote_hint = 'quote every caption that contains a comma ("a dog, running"; inner quotes doubled)'
    if len(header) != 2:
        raise AuditInputError(
            f"{source}: {where}: {len(fields)} fields but the header has {len(header)} columns, so which one holds "
            f"the extra commas is ambiguous; {quote_hint}"
        )
    line = record.rstrip("\r\n")
    image_first = header[0] == image_column
    image, caption = line.split(",", 1) if image_first else line.rsplit(",", 1)[::-1]
    if "\n" in line or "\r" in line or '"' in image or caption.startswith('"'):
        raise AuditInputError(
            f"{source}: {where}: {len(fields)} fields but the header has 2 columns, and a quote leaves it ambiguous "
            f"where the caption ends; {quote_hint}, or leave the caption wholly unquoted"
        )
    return [image, caption] if image_first else [caption, image]


def _ends_inside_quotes(record: str) -> bool:
    """Whether a CSV record ends inside a quoted field (read as the csv module does, non-strict)."""
    quoted, field_start, i = False, True, 0
    while i < len(record):
        char = record[i]
        if quoted:
            if char == '"':
                if record.startswith('"', i + 1):
                    i += 1  # a doubled quote inside the field
                else:
                    quoted = False
        elif char == '"' and field_start:
            quoted = True
        field_start = not quoted and char in ",\r\n"
        i += 1
    return quoted


def _parquet_rows(source: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        try:
            import pandas as pd
        except ImportError:
            raise AuditInputError(
                f"{source}: reading .parquet needs pyarrow or pandas (pip install pyarrow), or convert it to "
                "captions.csv / captions.jsonl"
            ) from None
        try:
            frame = pd.read_parquet(source)
        except Exception as error:
            raise AuditInputError(f"{source}: unreadable parquet file: {error}") from None
        return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    try:
        return pq.read_table(source).to_pylist()
    except Exception as error:
        raise AuditInputError(f"{source}: unreadable parquet file: {error}") from None


def _plain(value: Any) -> Any:
    # pandas gives numpy arrays for list columns
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, str) else value


# ── model ─────────────────────────────────────────────────────────────────────────────────────────


def _check_model_dir(model_dir: Path, given: str) -> None:
    if model_dir.is_dir():
        if not (model_dir / "config.json").is_file():
            raise AuditInputError(f"{model_dir}: not a transformers model folder (no config.json)")
        return
    if model_dir.exists():
        raise AuditInputError(f"{model_dir}: --model must be a folder, not a file")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", given) and not given.startswith((".", "/")):
        raise AuditInputError(
            f"--model {given!r} is not a local folder; embed runs offline only and never downloads. Download a "
            f"copy once (e.g. `huggingface-cli download {given} --local-dir DIR`) and pass --model DIR"
        )
    raise AuditInputError(f"{model_dir}: model folder not found")


def _load_model(model_dir: Path, device: torch.device, dtype: torch.dtype, show: bool) -> tuple[Any, Any, Any]:
    """(model, image processor, tokenizer), from the folder only."""
    from transformers import AutoImageProcessor, AutoModel, AutoProcessor, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the torchvision fallback notice etc. are not the user's business here
    if not show:
        hf_logging.disable_progress_bar()  # "Loading weights" bars
    try:
        try:
            model = AutoModel.from_pretrained(model_dir, local_files_only=True)
        except Exception as error:
            raise AuditInputError(f"{model_dir}: cannot load the model: {_first_line(error)}") from None
        processor = None
        try:
            processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        except Exception:
            pass  # older folders keep the image processor and tokenizer separately
        image_processor = getattr(processor, "image_processor", None)
        tokenizer = getattr(processor, "tokenizer", None)
        try:
            image_processor = image_processor or AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
        except Exception as error:
            raise AuditInputError(f"{model_dir}: cannot load the image processor: {_first_line(error)}") from None
        try:
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        except Exception as error:
            raise AuditInputError(f"{model_dir}: cannot load the tokenizer: {_first_line(error)}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()

    for method in ("get_image_features", "get_text_features"):
        if not callable(getattr(model, method, None)):
            raise AuditInputError(
                f"{model_dir}: {type(model).__name__} has no {method}(): not an image–text dual encoder"
            )
    if len(tokenizer) < _MIN_TOKENIZER_SIZE:
        raise AuditInputError(
            f"{model_dir}: the tokenizer has only {len(tokenizer)} tokens, so its files are missing or broken "
            "(save the tokenizer into the model folder)"
        )
    vocab_size = getattr(_text_config(model), "vocab_size", None)
    if vocab_size is not None and len(tokenizer) > vocab_size:
        raise AuditInputError(
            f"{model_dir}: the tokenizer has {len(tokenizer)} tokens but the text model only {vocab_size}: "
            "tokenizer and model do not belong together"
        )
    model.to(device=device, dtype=dtype).eval()
    return model, image_processor, tokenizer


def _text_config(model: Any) -> Any:
    return getattr(model.config, "text_config", model.config)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _features(output: Any) -> torch.Tensor:
    # transformers 4 returns the projected features; 5 wraps them as `pooler_output` of a model output.
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise TypeError(f"unexpected feature output {type(output).__name__}")


def _text_kwargs(model: Any, tokenizer: Any) -> dict[str, Any]:
    limits = [
        getattr(_text_config(model), "max_position_embeddings", None),
        getattr(tokenizer, "model_max_length", None),
    ]
    # model_max_length is 1e30 when a tokenizer config leaves it unset.
    max_length = min((limit for limit in limits if isinstance(limit, int) and 0 < limit < 100_000), default=77)
    siglip = "siglip" in str(getattr(model.config, "model_type", "")).lower()
    return {"padding": "max_length" if siglip else True, "truncation": True, "max_length": max_length}


# ── embedding ─────────────────────────────────────────────────────────────────────────────────────


def embed(
    model_dir: str | Path,
    data_dir: str | Path,
    out: str | Path,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    image_column: str = "image",
    caption_column: str = "caption",
    progress: bool | None = None,
    force: bool = False,
    allow_outside_data: bool = False,
) -> PairedEmbeddings:
    """Embed every image and caption of ``data_dir`` with the model in ``model_dir``; write ``out`` (.safetensors).

    Args:
        force: replace ``out`` if it is an existing file (never a folder); without it an existing ``out`` is
            refused before anything is computed.
        allow_outside_data: read images outside the data folder (see :func:`read_captions`).

    Returns what was written (CPU float32, L2-normalised rows). ``progress=None`` shows tqdm bars only when
    stderr is a terminal.

    Raises:
        AuditInputError: a bad model folder, caption table, image or ``out`` (an existing file without ``force``,
            a folder, a path under a file), or ``out`` could not be written (nothing is left under its name).
    """
    given = str(model_dir)
    model_dir, out = Path(model_dir).expanduser(), Path(out).expanduser()
    _check_out(out, force)
    if batch_size < 1:
        raise AuditInputError(f"--batch-size must be ≥ 1, got {batch_size}")
    _check_model_dir(model_dir, given)
    # The captions and images are checked before the (slow) model load so a typo fails at once.
    table = read_captions(
        data_dir, image_column=image_column, caption_column=caption_column, allow_outside_data=allow_outside_data
    )
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    show = sys.stderr.isatty() if progress is None else progress
    model, image_processor, tokenizer = _load_model(model_dir, device, dtype, show)

    with torch.inference_mode():
        image = _embed_images(model, image_processor, table, batch_size, device, dtype, show)
        text = _embed_texts(model, tokenizer, table, batch_size, device, show)
    if image.shape[1] != text.shape[1]:
        raise AuditInputError(
            f"{model_dir}: image features have dim {image.shape[1]} but text features {text.shape[1]}"
        )
    result = PairedEmbeddings(image, text, torch.tensor(table.caption_to_image, dtype=torch.int64))
    metadata = {
        "format": "torchspectral.embed/1",
        "model": str(model_dir.resolve()),
        "captions": str(table.source),
        "n_images": str(result.n_images),
        "n_captions": str(result.n_captions),
    }
    write_embeddings(out, result, metadata=metadata, force=force)
    return result


def _check_out(out: Path, force: bool) -> None:
    """Refuse an ``--out`` that cannot or may not be written, before any work."""
    if out.suffix.lower() != ".safetensors":
        raise AuditInputError(f"{out}: --out must end in .safetensors")
    if out.is_dir():
        raise AuditInputError(f"{out}: --out is a folder; name the .safetensors file to write")
    if out.exists() and not out.is_file():
        raise AuditInputError(f"{out}: --out exists and is not a regular file; choose another --out")
    if (out.exists() or out.is_symlink()) and not force:
        raise AuditInputError(f"{out} exists; pass --force to replace it, or choose another --out")
    parent = out.parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise AuditInputError(f"{out}: cannot create it: {parent} is not a folder")


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _embed_images(model, image_processor, table, batch_size, device, dtype, show) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError
    from tqdm.auto import tqdm

    accepted = set(inspect.signature(model.get_image_features).parameters)
    chunks = []
    total = -(-len(table.images) // batch_size)
    for paths in tqdm(_batches(table.images, batch_size), total=total, desc="images", unit="batch", disable=not show):
        pictures = []
        for path in paths:
            try:
                with Image.open(path) as picture:
                    pictures.append(picture.convert("RGB"))
            except (UnidentifiedImageError, OSError) as error:
                raise AuditInputError(f"{path}: unreadable image: {_first_line(error)}") from None
        processed = image_processor(images=pictures, return_tensors="pt")
        # Pass on everything the model takes: SigLIP 2 (NaFlex) also needs pixel_attention_mask and spatial_shapes.
        inputs = {
            key: value.to(device=device, dtype=dtype) if value.is_floating_point() else value.to(device)
            for key, value in processed.items()
            if key in accepted and isinstance(value, torch.Tensor)
        }
        features = _features(model.get_image_features(**inputs))
        chunks.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu())
    return torch.cat(chunks)


def _embed_texts(model, tokenizer, table, batch_size, device, show) -> torch.Tensor:
    from tqdm.auto import tqdm

    kwargs = _text_kwargs(model, tokenizer)
    accepted = set(inspect.signature(model.get_text_features).parameters)
    chunks = []
    total = -(-len(table.captions) // batch_size)
    for texts in tqdm(
        _batches(table.captions, batch_size), total=total, desc="captions", unit="batch", disable=not show
    ):
        tokens = tokenizer(list(texts), return_tensors="pt", **kwargs)
        inputs = {key: value.to(device) for key, value in tokens.items() if key in _TEXT_INPUTS and key in accepted}
        features = _features(model.get_text_features(**inputs))
        chunks.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu())
    return torch.cat(chunks)


def write_embeddings(
    out: str | Path, embeddings: PairedEmbeddings, metadata: dict[str, str] | None = None, *, force: bool = False
) -> Path:
    """Write ``image``, ``text``, ``caption_to_image`` to a .safetensors file atomically (temp file + rename).

    A crash never leaves a half-written file under the final name (an audit reading it later would fail
    with a confusing parse error, or worse, a stale file from an earlier run would be silently kept).

    Args:
        out: the file to write; its folder is created if needed.
        force: replace an existing ``out``. Without it the file is published only if the name is still free
            (a hard link, atomic), so a file that appeared while the embeddings were computed is kept.

    Raises:
        AuditInputError: ``out`` exists and ``force`` is off, or writing failed (disk full, permissions, file
            size limit); the message is one line naming ``out`` and the cause, and no file is left behind.
    """
    import safetensors
    from safetensors.torch import save_file

    write_errors = (OSError, getattr(safetensors, "SafetensorError", OSError))
    out = Path(out)
    tensors = {
        "image": embeddings.image.detach().cpu().contiguous(),
        "text": embeddings.text.detach().cpu().contiguous(),
        "caption_to_image": embeddings.caption_to_image.detach().cpu().to(torch.int64).contiguous(),
    }
    temporary = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(handle)
        save_file(tensors, temporary, metadata=metadata)
        if force:
            os.replace(temporary, out)
        else:
            _publish_new(temporary, out)
    except write_errors as error:
        cause = error.strerror if isinstance(error, OSError) and error.strerror else _first_line(error)
        raise AuditInputError(f"{out}: cannot write: {cause}") from None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
    return out


def _publish_new(temporary: str, out: Path) -> None:
    """Give ``temporary`` the name ``out`` only if no file has it: never replaces anything."""
    exists = AuditInputError(f"{out} exists; pass --force to replace it, or choose another --out")
    try:
        os.link(temporary, out)
    except FileExistsError:
        raise exists from None
    except OSError as error:
        # File systems without hard links (some network and FUSE mounts): check, then rename.
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS):
            raise
        if out.exists() or out.is_symlink():
            raise exists from None
        os.replace(temporary, out)


# ── command line ──────────────────────────────────────────────────────────────────────────────────


def add_embed_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``embed`` on an ``add_subparsers()`` object; the parsed args carry ``handler=run_embed``."""
    parser = subparsers.add_parser(
        "embed",
        help="embed images and captions with a local transformers model (offline) into a .safetensors",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--model", required=True, help="local model folder (save_pretrained layout); never a hub id")
    parser.add_argument("--data", required=True, help="folder with images and captions.csv/.jsonl/.parquet")
    parser.add_argument("--out", required=True, help="output .safetensors (keys image, text, caption_to_image)")
    parser.add_argument("--batch-size", type=int, default=64, help="images or captions per batch (default 64)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--image-column", default="image", help="caption-table column with image paths")
    parser.add_argument("--caption-column", default="caption", help="caption-table column with the captions")
    parser.add_argument("--force", action="store_true", help="replace --out if it is an existing file")
    parser.add_argument(
        "--allow-outside-data",
        action="store_true",
        help="read images outside the --data folder (by default a path that resolves outside it is refused)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run_embed)
    return parser


def run_embed(args: argparse.Namespace) -> int:
    """Handler of ``torchspectral embed``: 0 on success (AuditInputError propagates to the CLI's handler)."""
    result = embed(
        args.model,
        args.data,
        args.out,
        batch_size=args.batch_size,
        device=args.device,
        image_column=args.image_column,
        caption_column=args.caption_column,
        progress=False if getattr(args, "quiet", False) else None,
        force=getattr(args, "force", False),
        allow_outside_data=getattr(args, "allow_outside_data", False),
    )
    print(f"{result.n_images} images, {result.n_captions} captions, dim {result.dim} → {args.out}")
    return 0
