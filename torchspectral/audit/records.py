"""`RunResult`: what the audit measured for one model on one dataset (plain floats and lists, JSON-ready)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class RunResult:
    """One run of the audit. Every field is plain Python (str/int/float/list/dict) so it serialises to JSON.

    Attributes:
        model, dataset, domain: labels from the manifest (``domain`` is free text; the cross-run statistics
            compare domains, e.g. "medical" vs "natural").
        n_images, n_captions, dim: sizes of the inputs. Moment metrics use one (image, caption) pair per
            caption (an image with five captions contributes five pairs).
        metrics: name → value: every key of :func:`torchspectral.alignment_report` (first preset), including
            the retrieval keys ``i2t_r1, i2t_r5, i2t_r10, t2i_r1, t2i_r5, t2i_r10, rsum, i2t_median_rank,
            t2i_median_rank``; with more presets, ``"paper/svcca"`` etc. for the metrics a preset changes.
        intervals: metric name → [low, high] bootstrap confidence interval (empty when not computed).
        interval_methods: metric name → the interval method of ``intervals[name]``.
        no_interval: metric name → why it has no interval (the calibrated default gives none where no method is
            calibrated, or SAS is not identified at this n).
        identifiability: the SAS identifiability diagnostic per anchor, ``{"x": {"identified", "reason", "active",
            "boundary_ratio", "unresolved_mass", "mode_stability"}, "y": {...}}`` (empty when not computed).
        q_sweep: ``{"q": [...], "sas_x_to_y": [...], "sas_y_to_x": [...], "sas_imbalance": [...]}``.
        modes: per-eigenmode profile, descending eigenvalue order: ``lambda_x, rho_x_to_y, lambda_y,
            rho_y_to_x`` (lists of length dim) and ``active_x_to_y, active_y_to_x`` (active-set sizes at q=0.1).
        extremes: instance-level SAS (x→y, decompose mode): ``{"top": [{"caption": j, "image": i, "score": s},
            ...], "bottom": [...]}`` (a pair is indexed by its caption) — the best- and worst-aligned pairs.
        timings: stage name → seconds.
        ties: how retrieval treated tied similarity scores: ``{"rule": "optimistic", "tied_queries": k}`` with
            ``k`` the queries (images and captions) whose rank the rule changes, and when ``k > 0``
            ``"pessimistic": {key: value}`` — the retrieval keys under the pessimistic rule (a tied wrong item
            ranks ahead). The metrics' retrieval keys are the optimistic ones. Empty when retrieval was not run.
        verdict: which tower is the bottleneck (:func:`torchspectral.verdict.imbalance_verdict`, image = x, text =
            y): ``{"bottleneck": "image" | "text" | "none" | "inconclusive", "statistic": "subspace_sas_imbalance",
            "estimate", "low", "high", "reason", "x_to_y", "y_to_x", "se", "p_value", "delta_sas", "agrees",
            "confidence", "n"}``; estimate/low/high are None when inconclusive.
    """

    model: str
    dataset: str
    domain: str
    n_images: int
    n_captions: int
    dim: int
    metrics: dict[str, float]
    intervals: dict[str, list[float]] = field(default_factory=dict)
    interval_methods: dict[str, str] = field(default_factory=dict)
    no_interval: dict[str, str] = field(default_factory=dict)
    identifiability: dict[str, dict] = field(default_factory=dict)
    q_sweep: dict[str, list[float]] = field(default_factory=dict)
    modes: dict[str, list[float] | int] = field(default_factory=dict)
    extremes: dict[str, list[dict]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    ties: dict = field(default_factory=dict)
    verdict: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.model} / {self.dataset}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunResult:
        return cls(**data)


@dataclass(frozen=True)
class RunFailure:
    """A run the audit could not analyse: its labels and the one-line reason (listed in the report's "Failed runs")."""

    model: str
    dataset: str
    domain: str
    reason: str

    @property
    def name(self) -> str:
        return f"{self.model} / {self.dataset}"

    def to_dict(self) -> dict:
        return asdict(self)
