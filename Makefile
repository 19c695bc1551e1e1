# lakejob developer entry points. The first two are all a new machine needs:
#   make demo   local cluster with a real node + CRDs + operator + examples, watched until they settle
#   make test   unit tests, then e2e tests on the local cluster (builds binaries and images once)
#   make test-faults  kill -9 mid-burst, apiserver+etcd down, a watch cut past compaction (docs/reliability.md)
#   make images build the container images (Spark, Flink, operator, node's pause) into the cache
#   make image  only the operator's image, exported to dist/lakejob-operator-<version>.tar for your cluster
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CLUSTER := $(PY) hack/cluster/cluster.py
export LAKEJOB_CACHE ?= $(HOME)/.cache/lakejob


.PHONY: help venv tools image images cluster cluster-down kubeconfig crds deploy argocd kueue docs typecheck unit e2e test test-faults demo bench clean

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

# The pip installs, each a progress step (hack/progress.sh: a heartbeat while pip is silent).
# batchcompute 2.1.7 (Alibaba's SDK, which the gateway's tests sign requests with) is an old sdist
# whose setup.py imports pkg_resources: built without isolation, with a setuptools that has it.
# The Flink distribution for the real-Flink test: jars and scripts only (its Python API's
# dependencies would pin apache-beam and an old pandas), hence --no-deps.
$(BIN)/lakejob: pyproject.toml
	@. hack/progress.sh && \
	progress_run venv 1/6 "creating $(VENV)" $(PY) -m venv $(VENV) && \
	progress_run venv 2/6 "upgrading pip" $(BIN)/pip install -q --upgrade pip && \
	progress_run venv 3/6 "installing wheel and setuptools" $(BIN)/pip install -q wheel 'setuptools>=65,<81' && \
	progress_run venv 4/6 "installing batchcompute 2.1.7" $(BIN)/pip install -q --no-build-isolation batchcompute==2.1.7 && \
	progress_run venv 5/6 "installing lakejob[dev,spark] and its dependencies" $(BIN)/pip install -q -e '.[dev,spark]' && \
	progress_run venv 6/6 "installing the Flink distribution" \
	  $(BIN)/pip install -q --no-deps 'apache-flink>=2.0,<3' 'apache-flink-libraries>=2.0,<3'
	@touch $@

venv: $(BIN)/lakejob

tools:
	@bash hack/build-tools.sh

# The images the real node runs, built without a registry, cached by the hash of their inputs.
images:
	@$(PY) images/build.py build

# The operator's image alone, as a docker-archive to load where your cluster runs (docs/install.md):
# kind load image-archive, k3d image import, or docker load then docker tag + push to a registry.
image:
	@$(PY) images/build.py build --out dist operator

cluster: tools images
	@$(CLUSTER) up

cluster-down:
	@$(CLUSTER) down

kubeconfig:
	@$(CLUSTER) kubeconfig

crds: venv
	@$(BIN)/lakejob crds --output crds --chart charts/lakejob/crds

# Argo CD health checks and actions (docs/argocd), from one generator; a test fails when they drift.
argocd: venv
	@$(BIN)/python hack/render_argocd.py

# Kueue's manager and CRDs (v0.17.0, from Go modules) into the cache for tests/e2e/kueue.py; prints the binary's path.
kueue:
	@bash hack/kueue/build.sh

# docs/settings.md is generated from lakejob.settings; a test fails when it drifts.
docs: venv
	@$(BIN)/lakejob settings --markdown > docs/settings.md

# deploy/ (kustomize) is rendered from the Helm chart; a test fails when it drifts.
deploy: venv tools
	@$(BIN)/python hack/render_deploy.py

typecheck: venv
	@$(BIN)/mypy

unit: venv
	@$(BIN)/pytest -q tests/unit

e2e: venv tools images
	@$(BIN)/pytest -q -m "not kueue" tests/e2e
	@$(BIN)/pytest -q -m kueue tests/e2e

# Unit tests, the type check, then the e2e suite on the real local control plane.
test: venv tools images
	@$(BIN)/mypy
	@$(BIN)/pytest --durations=25 -m "not kueue" tests/unit tests/e2e
	@$(BIN)/pytest --durations=10 -m kueue tests/e2e

# The fault tests, each on a KWOK-only control plane of its own (the shared cluster is left alone);
# they write their figures into docs/reliability.md. .ci/run calls it after `make test`.
test-faults: venv tools
	@$(BIN)/pytest -m faults tests/e2e/test_faults.py

demo: venv cluster
	@$(BIN)/python hack/demo.py

bench: venv cluster
	@$(BIN)/python bench/burst.py
	@$(BIN)/python bench/burst.py --steady 50 --seconds 60
	@for kind in SparkSession FlinkJarJob DagJob; do $(BIN)/python bench/burst.py --kind $$kind -n 300 || exit 1; done
	@$(BIN)/python bench/live.py
	@$(BIN)/python bench/sparksubmit.py
	@$(BIN)/python bench/dag.py
	@$(BIN)/python bench/sparksession_poll.py
	@$(BIN)/python bench/real_sparkpi.py
	@$(BIN)/python bench/gateway.py
	@$(BIN)/python bench/queues.py -n 400  # 1,000 (its default) drain in about 8 min here

clean:
	rm -rf $(VENV) build dist *.egg-info
