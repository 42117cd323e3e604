# Two commands for a new user: `make demo` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
DEPS := $(VENV)/.installed-deps

.PHONY: demo test bench lint clean

# Every dependency but the torch pair, read from pyproject.toml: with these the data tools run (they
# import no torch), so `make demo` draws its data set while torch installs.
define DEPS_BUT_TORCH
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print("\n".join(d for d in deps if not d.startswith("torch")))
endef
export DEPS_BUT_TORCH

$(DEPS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/python -c "$$DEPS_BUT_TORCH" > $(VENV)/requirements-but-torch.txt
	$(BIN)/pip install --quiet -r $(VENV)/requirements-but-torch.txt
	touch $(DEPS)

# The package and what it needs to run (what `make demo` waits for).
$(STAMP): $(DEPS)
	# This pair is the newest that this machine's pip serves (and that import together).
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e .
	touch $(STAMP)

# The test tools and every optional extra, so that their tests run: serve (web stack), ray, openvino.
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,serve,ray,openvino]'
	# SAHI, the sliced-inference reference the tiling tests and benchmark compare against. Its own
	# requirements name opencv-python, whose 5.x wheel would shadow our OpenCV 4.x (the Darknet reader):
	# install it without its requirements, then the ones it uses but OpenCV.
	$(BIN)/pip install --quiet --no-deps 'sahi>=0.11,<0.13'
	$(BIN)/pip install --quiet 'shapely>=2' 'fire' 'click' 'requests'
	touch $(TEST_STAMP)

# The demo ends within DEMO_SECONDS of `make demo` starting, the install included: on a fresh install
# its data set is drawn (one process, `python -m yolov3.demo_data`) while pip installs torch, and the
# trainer gets whatever time the install and the data leave (it anneals its schedule by then), less a
# margin.
DEMO_SECONDS ?= 600
demo:
	@start=$$(date +%s); $(MAKE) --no-print-directory $(DEPS) || exit 1; \
	drawing=; if [ ! -f $(STAMP) ]; then $(BIN)/python -m yolov3.demo_data --workers 1 --quiet & drawing=$$!; fi; \
	$(MAKE) --no-print-directory $(STAMP) || { [ -z "$$drawing" ] || kill $$drawing; exit 1; }; \
	wait; \
	$(BIN)/yolov3 demo --deadline $$((start + $(DEMO_SECONDS) - 10))

test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n 2 --dist loadfile

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/run_all.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m yolov3.tools.imports
	$(BIN)/python -m yolov3.tools.sizes

clean:
	rm -rf $(VENV) runs build *.egg-info
