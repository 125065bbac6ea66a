"""The base of every loss module: its inputs' values are checked on the first call, not on every step."""

from __future__ import annotations

from typing import Any

from torch import nn

from torchspectral.validation import ValidatesArgs


class Loss(ValidatesArgs, nn.Module):
    """An ``nn.Module`` loss whose value checks (finite inputs, non-zero variance, non-zero rows: each a host
    synchronisation on CUDA) run according to ``validate_args``: ``"first"`` (default) on the first call only, so
    a wrong input is caught at once and training steps do not wait for the host; True on every call; False never.
    Unchecked, bad values give a NaN or Inf loss, as any torch loss does. Shape checks always run."""

    def __init__(self, validate_args: bool | str = "first") -> None:
        super().__init__()
        self._set_validate_args(validate_args, type(self).__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.step_checks():
            return super().__call__(*args, **kwargs)
