# Two entry points for people: `make demo` and `make test`. Both install first if needed.
#
# The TFX 1.16 stack declares Python < 3.11, but every wheel it needs exists for 3.11:
# requirements/lock.txt is resolved for 3.10 (`make lock`) and installed without
# re-resolving (--no-deps), into .venv/ at the repository root. requirements/overrides.txt
# gives it what the 3.11 wheels declare where that differs (protobuf).

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := .tools/bin/uv
STAMP := $(VENV)/.installed
DEMO_DIR := runs/demo
PYTEST_ARGS ?=
# Tests run in this many processes (pytest-xdist), a test file at a time: the tests of one file share
# its fixtures (the built image, the demo run) and run in their order.
TEST_WORKERS ?= 2

export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 1

.PHONY: install demo test test-fast lock image push-image clean

install: $(STAMP)

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

$(STAMP): requirements/lock.txt setup.py $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --python $(PY) --no-deps -r requirements/lock.txt
	$(UV) pip install --quiet --python $(PY) --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cifar-tfx data synth --out $(DEMO_DIR)/data
	$(VENV)/bin/cifar-tfx run --data $(DEMO_DIR)/data --profile demo \
		--pipeline-root $(DEMO_DIR)/pipeline --serving-dir $(DEMO_DIR)/serving

test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

lock: $(UV)
	$(UV) pip compile --quiet --python-version 3.10 --override requirements/overrides.txt \
		requirements/requirements.in -o requirements/lock.txt
	$(UV) pip compile --quiet --python-version 3.10 --python-platform x86_64-manylinux_2_28 \
		--override requirements/overrides.txt requirements/cuda.in -o requirements/lock-cuda.txt

# The Kubeflow image: `make image IMAGE=registry.example.com/cifar-tfx:1 [WITH_CUDA=0] [BASE_IMAGE=...]`,
# with docker when a Docker engine answers, else with buildah (kubeflow/build_image.sh).
# `make push-image IMAGE=...` pushes it with the same tool.
WITH_CUDA ?= 1
image:
	@test -n "$(IMAGE)" || { echo "usage: make image IMAGE=registry/name:tag"; exit 2; }
	WITH_CUDA=$(WITH_CUDA) BASE_IMAGE=$(BASE_IMAGE) kubeflow/build_image.sh $(IMAGE)

push-image:
	@test -n "$(IMAGE)" || { echo "usage: make push-image IMAGE=registry/name:tag"; exit 2; }
	if docker info >/dev/null 2>&1; then docker push $(IMAGE); \
	else STORAGE_DRIVER=$${STORAGE_DRIVER:-vfs} buildah push $(IMAGE); fi

clean:
	rm -rf $(VENV) .tools runs .pytest_cache
