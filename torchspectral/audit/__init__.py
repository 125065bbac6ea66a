"""The audit: every metric over many models × datasets, cross-run statistics, plots, and the CLI.

Modules (one concept each):

* :mod:`~torchspectral.audit.records` — :class:`RunResult`, the per-run record every other module reads, and
  :class:`RunFailure`, a run that could not be analysed.
* :mod:`~torchspectral.audit.manifest` — the TOML manifest (one ``[[run]]`` table per model × dataset).
* :mod:`~torchspectral.audit.readers` — embedding files (.safetensors, .npy/.npz, .pt with ``weights_only``).
* :mod:`~torchspectral.audit.destination` — where the report may go (never an input), staging, atomic publish.
* :mod:`~torchspectral.audit.analysis` — one run: report, retrieval, bootstrap CIs, q-sweep, instance SAS.
* :mod:`~torchspectral.audit.run` — the whole audit (manifest → report), failed runs isolated.
* :mod:`~torchspectral.audit.statistics` — cross-run tests (scipy): domains, ΔSAS, Spearman vs retrieval.
* :mod:`~torchspectral.audit.plots` — PNG figures (matplotlib, Agg backend).
* :mod:`~torchspectral.audit.output` — report.json / runs.csv / report.md, written atomically.
* :mod:`~torchspectral.audit.embed` — embedding extraction from a local transformers model folder.
"""
