# One command each: `make test`, `make demo`, `make bench`. Each creates .venv if missing and installs the locked
# environment (requirements.lock: every dependency of the extras at one version, torch as the CPU wheel), then the
# package itself, then runs. `make lock` refreshes the lock; `make test-latest` tries the newest allowed releases.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# constraints.txt pins the CPU wheel of torch: letting pip choose torch pulls GBs of CUDA wheels.
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.installed
LOCK := requirements.lock
EXTRAS := test,bench,audit,examples,lint,docs
# examples/close_the_gap.py (a test runs it) renders emoji with Noto Color Emoji, a system font package.
EMOJI_FONTS := /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf /usr/share/fonts/noto/NotoColorEmoji.ttf \
	/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf

.PHONY: test lint lock test-latest emoji-font demo bench bench-pairwise bench-neighbours bench-audit aot aot-sweep bench-gpu \
	bench-sas-replicates coverage coverage-default coverage-verdict install clean

$(STAMP): pyproject.toml constraints.txt $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r $(LOCK)
	$(PIP) --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Every test, then lint. pytest exits 5 when it collected no test: that is a failure here, never a silent pass.
test: $(STAMP) emoji-font
	$(PY) -m pytest || { rc=$$?; [ $$rc -eq 5 ] && echo "pytest collected no tests" >&2; exit $$rc; }
	$(MAKE) --no-print-directory lint

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The font the example test needs: found (or NOTO_EMOJI_FONT names a copy), else installed with apt-get as root or
# through sudo -n; where neither works, stop and say what to install, so that the test never skips.
emoji-font:
	@for f in $(EMOJI_FONTS) $${NOTO_EMOJI_FONT:-}; do [ -f "$$f" ] && exit 0; done; \
	sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo -n"; \
	echo "make: installing fonts-noto-color-emoji with apt-get"; \
	{ $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    fonts-noto-color-emoji >/dev/null; } || \
	{ echo "make: could not install fonts-noto-color-emoji: install it, or set NOTO_EMOJI_FONT to a" \
	  "NotoColorEmoji.ttf, and rerun" >&2; exit 1; }

# Refresh the lock to the newest releases pyproject's ranges allow (pip-tools, in a venv of its own so that the
# project's environment holds exactly what the lock lists). Commit the result after `make test` passes on it.
LOCK_VENV := .venv-lock
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && \
		$(LOCK_VENV)/bin/pip install --quiet --disable-pip-version-check pip-tools; }
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --upgrade --allow-unsafe \
		--strip-extras --no-emit-index-url --no-emit-find-links --extra $(EXTRAS) -c constraints.txt \
		-o $(LOCK) pyproject.toml

# Drift on purpose (not CI): a separate venv with the newest releases the ranges allow, then every test and lint.
LATEST_VENV := .venv-latest
test-latest: emoji-font
	test -x $(LATEST_VENV)/bin/python || $(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		--upgrade --upgrade-strategy eager -e '.[$(EXTRAS)]'
	$(LATEST_VENV)/bin/python -m pip freeze --exclude-editable > $(LATEST_VENV)/freeze.txt
	@echo "make: testing against the newest releases (versions in $(LATEST_VENV)/freeze.txt)"
	$(LATEST_VENV)/bin/python -m pytest
	$(LATEST_VENV)/bin/ruff check . && $(LATEST_VENV)/bin/ruff format --check .

demo: $(STAMP)
	$(VENV)/bin/torchspectral demo

# The benchmarks: every script, its target and the results file it writes are listed in benchmarks/README.md.
# The moment metrics (pytest-benchmark, benchmarks/speed/; `make test` never collects these).
bench: $(STAMP)
	$(PY) -m pytest benchmarks/speed/test_moment_metrics.py -p no:cacheprovider --benchmark-only \
		--benchmark-json=benchmarks/results/cpu-$$(nproc)core.json
	$(PY) benchmarks/speed/summarize.py benchmarks/results/cpu-$$(nproc)core.json

# The pairwise metrics (n = 2,000 and 20,000, d = 768; about 10 minutes on 2 cores).
# Mutual kNN and CKNNA against the dense formulation (n = 2,000) and the retrieval floor (n = 20,000).
bench-neighbours: $(STAMP)
	$(PY) -m pytest benchmarks/speed/test_neighbours.py -p no:cacheprovider --benchmark-only \
		--benchmark-json=benchmarks/results/neighbours-cpu-$$(nproc)core.json

bench-pairwise: $(STAMP)
	$(PY) -m pytest benchmarks/speed/test_pairwise.py -p no:cacheprovider --benchmark-only \
		--benchmark-json=benchmarks/results/cpu-$$(nproc)core-pairwise.json
	$(PY) benchmarks/speed/summarize.py benchmarks/results/cpu-$$(nproc)core-pairwise.json

clean:
	rm -rf $(VENV) $(LOCK_VENV) $(LATEST_VENV) *.egg-info .pytest_cache .benchmarks

# The audit: 10 runs of n = 5,000, d = 768 end to end (goal: under 2 minutes on 2 cores).
bench-audit: $(STAMP)
	$(PY) -m pytest benchmarks/speed/test_audit.py -p no:cacheprovider --benchmark-only -s \
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
	$(PY) -m pytest benchmarks/speed/test_sas_replicate_cost.py -p no:cacheprovider --benchmark-only -s \
		--benchmark-json=benchmarks/results/sas-replicate-cost-cpu-$$(nproc)core.json

# Coverage of the interval methods against known truth (benchmarks/calibration/coverage.py, the committed grid; about
# 18 minutes on 2 cores, two single-thread workers). Writes benchmarks/results/coverage-cpu-2core.json and prints the
# table.
coverage: $(STAMP)
	$(PY) benchmarks/calibration/coverage.py --workers 2 --budget-min 22

# The verdict as users get it (ts.imbalance_verdict at its defaults) against planted models: every regime of
# benchmarks/calibration/coverage_verdict.py, held-out ones included (about 40 minutes on 2 cores). Writes
# benchmarks/results/coverage-verdict-cpu-2core.json (+ raw .gz). docs/verdict.md reads it.
coverage-verdict: $(STAMP)
	$(PY) benchmarks/calibration/coverage_verdict.py --workers 2

# The calibrated default alone, as ts.bootstrap returns it (B = 200), with 100–200 repeats per regime (d = 768
# included; about 55 minutes on 2 cores, 13 of them the Monte-Carlo population values), then the verdict's pass
# (coverage-verdict). Writes benchmarks/results/coverage-default-cpu-2core.json (+ raw .gz) and the digest the
# audit quotes (torchspectral/uncertainty/calibration.json).
coverage-default: coverage-verdict $(STAMP)
	$(PY) benchmarks/calibration/coverage_default.py --workers 2 --budget-min 50
