"""What the metric registry knows about each output of a streaming metric: its direction and its range.

torchmetrics reads ``higher_is_better`` (e.g. ``MetricTracker``) and ``plot_lower_bound``/``plot_upper_bound``
(``Metric.plot``) from a metric. A metric with one output gets them from its registry entry; one whose ``compute``
returns a dict has no single direction (``higher_is_better`` stays None) and exposes every output's entry in
``metric_info``, keyed like ``compute()``'s dict; a one-output metric's ``metric_info`` is its entry.
"""

from __future__ import annotations

from typing import Any

from torchspectral.registry import METRICS


def class_facts(*names: str) -> tuple[bool | None, float | None, float | None]:
    """(``higher_is_better``, ``plot_lower_bound``, ``plot_upper_bound``) of a one-output metric class whose output
    is one of these registry entries (torchmetrics makes the three constants of the class). The entries must agree
    on the direction; a bound they do not share is None (no bound claimed)."""
    infos = [METRICS[name] for name in names]
    directions = {info.higher_is_better for info in infos}
    if len(directions) != 1:
        raise ValueError(f"the registry entries {names} disagree on which way is better")
    lows, highs = {info.low for info in infos}, {info.high for info in infos}
    return directions.pop(), lows.pop() if len(lows) == 1 else None, highs.pop() if len(highs) == 1 else None


def set_dict_facts(metric: Any, names: dict[str, str]) -> None:
    """Per-output registry entries of a metric whose ``compute`` returns a dict (output key → registry name)."""
    metric.metric_info = {key: METRICS[name] for key, name in names.items()}
