"""The audit: every metric over many models × datasets, cross-run statistics, plots, and the CLI.

Modules (one concept each):

* :mod:`~torchspectral.audit.records` — :class:`RunResult`, the per-run record every other module reads.
* :mod:`~torchspectral.audit.manifest` — the TOML manifest (one ``[[run]]`` table per model × dataset).
* :mod:`~torchspectral.audit.readers` — embedding files (.safetensors, .npy/.npz, .pt with ``weights_only``).
* :mod:`~torchspectral.audit.analysis` — one run: report, retrieval, bootstrap CIs, q-sweep, instance SAS.
* :mod:`~torchspectral.audit.statistics` — cross-run tests (scipy): domains, ΔSAS, Spearman vs retrieval.
* :mod:`~torchspectral.audit.plots` — PNG figures (matplotlib, Agg backend).
* :mod:`~torchspectral.audit.output` — report.json / runs.csv / report.md, written atomically.
* :mod:`~torchspectral.audit.embed` — embedding extraction from a local transformers model folder.
"""
