# One command each: `make test`, `make demo`, `make bench`. Each creates .venv if missing, installs the
# pinned CPU torch first (constraints.txt; letting pip choose torch pulls GBs of CUDA wheels), then the
# package with its extras, then runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: test demo bench bench-pairwise bench-audit aot aot-sweep bench-gpu bench-sas-replicates coverage coverage-default install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test,bench,audit,examples]'
	touch $(STAMP)

install: $(STAMP)

# pytest exits 5 when it collected no test: that is a failure here, never a silent pass.
test: $(STAMP)
	$(PY) -m pytest || { rc=$$?; [ $$rc -eq 5 ] && echo "pytest collected no tests" >&2; exit $$rc; }

demo: $(STAMP)
	$(VENV)/bin/torchspectral demo

bench: $(STAMP)
	$(PY) -m pytest benchmarks/test_moment_metrics.py -p no:cacheprovider --benchmark-only \
		--benchmark-json=benchmarks/results/cpu-$$(nproc)core.json
	$(PY) benchmarks/summarize.py benchmarks/results/cpu-$$(nproc)core.json

# The pairwise metrics (n = 2,000 and 20,000, d = 768; about 10 minutes on 2 cores).
bench-pairwise: $(STAMP)
	$(PY) -m pytest benchmarks/test_pairwise.py -p no:cacheprovider --benchmark-only \
		--benchmark-json=benchmarks/results/cpu-$$(nproc)core-pairwise.json
	$(PY) benchmarks/summarize.py benchmarks/results/cpu-$$(nproc)core-pairwise.json

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .benchmarks

# The audit: 10 runs of n = 5,000, d = 768 end to end (goal: under 2 minutes on 2 cores).
bench-audit: $(STAMP)
	$(PY) -m pytest benchmarks/test_audit.py -p no:cacheprovider --benchmark-only -s \
		--benchmark-json=benchmarks/results/audit-cpu-$$(nproc)core.json

# Ahead-of-time compiles of the Triton kernels for sm_80 and sm_90 (no GPU needed; TRITON_INTERPRET must be
# unset for these). `aot`: the default configs (what tests/test_kernels_aot.py checks, ~30 s); `aot-sweep`:
# every autotune config in every precision and dtype (a few minutes), raw JSON under benchmarks/results/.
aot: $(STAMP)
	env -u TRITON_INTERPRET $(PY) -m torchspectral.kernels.aot --json benchmarks/results/aot-default.json

aot-sweep: $(STAMP)
	env -u TRITON_INTERPRET $(PY) -m torchspectral.kernels.aot --sweep --json benchmarks/results/aot-sweep.json

# The GPU benchmark (benchmarks/gpu.py): on a machine without a GPU it says so, runs the AOT part and exits 0.
bench-gpu: $(STAMP)
	$(PY) benchmarks/gpu.py

# One exact SAS bootstrap replicate (float32 vs float64 eigensolves) against its floor, n = 5,000 and 20,000, d = 768.
bench-sas-replicates: $(STAMP)
	$(PY) -m pytest benchmarks/test_sas_replicate_cost.py -p no:cacheprovider --benchmark-only -s \
		--benchmark-json=benchmarks/results/sas-replicate-cost-cpu-$$(nproc)core.json

# Coverage of the interval methods against known truth (benchmarks/coverage.py, the committed grid; about 18 minutes
# on 2 cores, two single-thread workers). Writes benchmarks/results/coverage-cpu-2core.json and prints the table.
coverage: $(STAMP)
	$(PY) benchmarks/coverage.py --workers 2 --budget-min 22

# The calibrated default alone, as ts.bootstrap returns it (B = 200), with 100–200 repeats per regime (d = 768
# included; about 55 minutes on 2 cores, 13 of them the Monte-Carlo population values). Writes
# benchmarks/results/coverage-default-cpu-2core.json (+ raw .gz) and the digest the audit quotes
# (torchspectral/bootstrap/calibration.json).
coverage-default: $(STAMP)
	$(PY) benchmarks/coverage_default.py --workers 2 --budget-min 50
