"""``torchspectral.kernels``: whether the fused kernels can run here, and the door to the device code.

The device code (one op per file: kernel and launcher; the autograd Functions that pair a fused forward with
the torch backward are in :mod:`torchspectral.pairwise`, which imports these files, never the reverse) lives
in the repository's top-level ``kernels/`` folder; ``kernels/README.md`` maps it. This module is what
``import torchspectral.kernels`` gives, and it makes that folder its package path, so ``torchspectral.kernels.tiles``
and friends import from it.

Why a module and not ``kernels/__init__.py``: a folder with an ``__init__.py`` in the repository root is a
regular package named ``kernels`` for any Python started there (pytest, a script, ``python -c``), and it would
shadow the PyPI package ``kernels`` that ``transformers`` imports. Without one the folder is at most a namespace
portion, which never wins over a regular package or module elsewhere on ``sys.path``. A module that sets
``__path__`` is a package to the import system, so nothing else changes: installed from a wheel the folder sits
next to this file as ``torchspectral/kernels/``; in a checkout or an editable install it is ``../kernels``.

Triton is optional: nothing here imports it until asked, and nothing probes a device at import.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path


def _device_code_folder() -> Path:
    """The folder holding the ops: ``torchspectral/kernels/`` in a wheel, the checkout's ``kernels/`` otherwise."""
    here = Path(__file__).resolve().parent
    for folder in (here / "kernels", here.parent / "kernels"):
        if (folder / "tiles.py").is_file():  # a file of ours: site-packages/kernels is somebody else's package
            return folder
    raise ImportError(
        f"torchspectral.kernels: the device code folder is missing (looked in {here / 'kernels'} and "
        f"{here.parent / 'kernels'}); reinstall torchspectral"
    )


__path__ = [str(_device_code_folder())]  # makes this module a package whose submodules are the ops

MIN_CAPABILITY = (8, 0)  # tf32/bf16 tensor cores (mma.sync .tf32) and cp.async: Ampere or newer


def available() -> bool:
    """True when Triton can be imported (kernels then run on CUDA tensors, or on CPU under TRITON_INTERPRET=1).

    Whether a given CUDA device can run them is :func:`cuda_unsupported`.
    """
    return importlib.util.find_spec("triton") is not None


@functools.cache
def cuda_unsupported(index: int) -> str | None:
    """Why the kernels cannot run on CUDA device ``index`` (None: they can): Triton missing, no driver Triton can
    load, or compute capability below 8.0. Probed on first use per device, never at import, and cached."""
    import torch

    if not available():
        return "the triton package is not installed (pip install triton)"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    major, minor = torch.cuda.get_device_capability(index)
    if (major, minor) < MIN_CAPABILITY:
        name = torch.cuda.get_device_name(index)
        return f"cuda:{index} ({name}) has compute capability {major}.{minor}; the kernels need 8.0 or newer"
    try:
        from triton.runtime import driver

        target = driver.active.get_current_target()
    except Exception as error:  # any failure to load the driver means: no kernels on this device
        return f"Triton cannot use the CUDA driver ({type(error).__name__}: {error})"
    if target.backend != "cuda":
        return f"Triton's active backend is {target.backend!r}, not 'cuda'"
    return None


def interpreting() -> bool:
    """True when Triton runs in its CPU interpreter (TRITON_INTERPRET=1; Triton reads it when it is imported)."""
    return os.environ.get("TRITON_INTERPRET") == "1"
