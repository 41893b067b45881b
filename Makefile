# edgekit: train -> quantize -> deploy -> bench -> report, one command per step.
# Every target bootstraps the pinned .venv on first use (scripts/bootstrap.sh).
# Variables (all optional): see `make help`.

SHELL      := /bin/bash
VENV       ?= .venv
PY         := $(VENV)/bin/python
DATASET    ?= mnist5k
comma      := ,
# With MODEL= (your own model) the bundle is named after the (first) model file unless NAME= says.
NAME       ?= $(if $(MODEL),$(basename $(notdir $(patsubst %/,%,$(firstword $(subst $(comma), ,$(MODEL)))))),$(subst :,_,$(subst /,_,$(DATASET))))
BUNDLE     ?= artifacts/$(NAME)
HOST       ?= local
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONDONTWRITEBYTECODE = 1

# User values reach the commands through the environment ("$$HOST"), never pasted into the
# recipe text, so quotes, `;` or `$$(...)` in a value are never interpreted by the shell.
export DATASET NAME BUNDLE HOST HOSTS PROFILE SSH_KEY ALPHA EPOCHS SEED CALIB A B BOARDS BOARD_CPU \
       KEEP ROLLOUT BATCH MAX_FAIL RELEASE VARIANT SUITE MODULES
export MODEL EVAL LABELS PREPROCESS PIXEL_SCALE PIXEL_OFFSET COLOR_ORDER RESIZE CALIB_N MAX_DROP_PP \
       INT8_FALLBACK SIGNATURE TASK SOFTMAX INPUT WEIGHTS
# onnx2tf (ONNX models in) and torch (PyTorch models in) live in their own venvs: their pins clash with ours.
ONNX2TF_VENV ?= $(HOME)/.cache/edgekit/onnx2tf-venv
TORCH_VENV   ?= $(HOME)/.cache/edgekit/torch-venv
export EDGEKIT_ONNX2TF = $(ONNX2TF_VENV)
export EDGEKIT_TORCH = $(TORCH_VENV)
TORCH_MODEL   = $(filter %.pt2,$(MODEL))$(findstring .py:,$(MODEL))
export MAX_P50_US MAX_P99_US MAX_RSS_MB MAX_SIZE_KB MIN_TOP1 THREADS TRIALS MAX_TRAINED SPACE TIME_BUDGET_MIN
# Optional flags are passed only when the variable is set.
opt = $(if $($(1)),$(2) "$$$(1)")
TRAIN_FLAGS  = $(call opt,ALPHA,--alpha) $(call opt,EPOCHS,--epochs) $(call opt,SEED,--seed)
DATA_FLAGS   = $(call opt,EVAL,--eval) $(call opt,LABELS,--labels) $(call opt,PREPROCESS,--preprocess) \
               $(call opt,PIXEL_SCALE,--pixel_scale) $(call opt,PIXEL_OFFSET,--pixel_offset) \
               $(call opt,COLOR_ORDER,--color-order) $(call opt,RESIZE,--resize) $(call opt,TASK,--task)
ifdef MODEL
QUANTIZE_FLAGS = --model "$$MODEL" $(call opt,CALIB,--calib) $(call opt,CALIB_N,--calib_n) $(DATA_FLAGS) \
                 $(call opt,MAX_DROP_PP,--max-drop-pp) $(call opt,INT8_FALLBACK,--int8-fallback) \
                 $(call opt,SIGNATURE,--signature) $(call opt,SOFTMAX,--softmax) $(call opt,INPUT,--input) \
                 $(call opt,WEIGHTS,--weights)
else
QUANTIZE_FLAGS = $(call opt,CALIB,--calib_n) $(call opt,SOFTMAX,--softmax)
endif
# RUNTIME=onnxruntime or RUNTIMES=litert,onnxruntime: deploy installs ONNX Runtime beside LiteRT, bench runs each.
export RUNTIME RUNTIMES
# EXTRAS=opencv-python-headless: deploy also installs these opt-in extras (device/requirements-extras.txt).
export EXTRAS
RUNTIME_FLAGS = $(if $(RUNTIMES),--runtimes "$$RUNTIMES",$(call opt,RUNTIME,--runtimes))
TARGET_FLAGS = $(if $(HOSTS),--hosts "$$HOSTS",--host "$$HOST") $(call opt,PROFILE,--profile) \
               $(call opt,SSH_KEY,--ssh-key) $(if $(filter 1 yes true,$(TRUST_NEW_HOST)),--trust-new-host)

# make search: NAME only when the user gave one (the default NAME is the dataset's, which would
# overwrite the default bundle; the search's own default is DATASET-best).
SEARCH_FLAGS = $(if $(filter command line environment,$(origin NAME)),--name "$$NAME") \
               $(call opt,MAX_P50_US,--max-p50-us) $(call opt,MAX_P99_US,--max-p99-us) \
               $(call opt,MAX_RSS_MB,--max-rss-mb) $(call opt,MAX_SIZE_KB,--max-size-kb) \
               $(call opt,MIN_TOP1,--min-top1) $(call opt,THREADS,--num_threads) $(call opt,TRIALS,--trials) \
               $(call opt,MAX_TRAINED,--max-trained) \
               $(call opt,EPOCHS,--epochs) $(call opt,SPACE,--space) $(call opt,TIME_BUDGET_MIN,--time-budget-min) \
               $(call opt,STORAGE,--storage) $(call opt,WORKERS,--workers) $(call opt,SAMPLER,--sampler) \
               $(call opt,FOLDS,--folds) $(TARGET_FLAGS)
# make search-worker / search-dashboard: the study NAME (the search's NAME, default DATASET-best) in STORAGE
SEARCH_NAME = $(if $(filter command line environment,$(origin NAME)),$(NAME),$(subst /,_,$(subst :,_,$(DATASET)))-best)

.PHONY: help venv venv-onnx2tf venv-torch torch-mnist all train quantize bundle evaluate agent deploy bench profile report compare score perf search search-perf \
        search-worker search-dashboard \
        board board-stop board-status serve stop releases rollback fuzz test mutate clean

help:
	@grep -E '^## ' Makefile | sed 's/^## //'
	@echo
	@echo 'Variables: DATASET=mnist5k NAME=<from DATASET> BUNDLE=artifacts/NAME ALPHA=1.0 EPOCHS=40 SEED=42 CALIB=300'
	@echo '           HOST=local | HOSTS=a,b,c | HOSTS=@fleet.txt   PROFILE=rpi4|path.yaml   SSH_KEY=   TRUST_NEW_HOST=1'
	@echo '           search: MAX_P50_US= MAX_P99_US= MAX_RSS_MB= MAX_SIZE_KB= MIN_TOP1= THREADS=1 TRIALS=36 MAX_TRAINED=8'
	@echo '                   EPOCHS=40 SPACE=host/search/space.yaml TIME_BUDGET_MIN= (NAME= default DATASET-best)'
	@echo '                   WORKERS=1 STORAGE=postgresql://USER@HOST/DB SAMPLER=tpe|nsga2|random FOLDS=3 PORT=8080'
	@echo '           KEEP=3 ROLLOUT=canary|rolling BATCH=N MAX_FAIL=percent (deploy)   RELEASE=id (rollback)'
	@echo '           RUNTIME=onnxruntime | RUNTIMES=litert,onnxruntime (deploy installs ONNX Runtime; bench runs each runtime)'
	@echo '           EXTRAS=opencv-python-headless (deploy installs OpenCV too: video:/camera:/rtsp:// sources, --record)'
	@echo '           your model: MODEL=m.keras|m.h5|m.onnx|m.pt2|net.py:fn|saved_model/ CALIB=folder:imgs/|npz:c.npz|DATASET|random CALIB_N=300 INPUT=1x3x224x224 WEIGHTS=sd.pt'
	@echo '           EVAL=folder:DIR|npz:F|csv:F LABELS=labels.txt PREPROCESS=unit|signed|raw|imagenet'
	@echo '           PIXEL_SCALE= PIXEL_OFFSET= (one value or R,G,B) COLOR_ORDER=RGB|BGR RESIZE=stretch|crop|letterbox TASK=classify|detect|segment|keypoints|raw'
	@echo '           MAX_DROP_PP=1.0 INT8_FALLBACK=N SIGNATURE=serving_default SOFTMAX=host|graph (a classifier'"'"'s softmax)'
	@echo '           A= B= (compare)   VARIANT=int8 (profile)   SUITE=trixie|bookworm BOARDS=N OFFLINE=1 BOARD_CPU=cortex-a72 (board)   FUZZ_CASES=500 PERF_REPEATS=3 PERF_STEPS=a,b (perf: those steps alone)'
	@echo '           MODULES="device/measure/stats.py host/compare/results.py" (mutate: some modules only; default all)'

## make all          train -> quantize -> deploy -> bench -> report on the offline default (HOST=local)
all: train quantize deploy bench report

venv: $(VENV)/.requirements.sha256
$(VENV)/.requirements.sha256: requirements.txt scripts/bootstrap.sh
	@VENV=$(VENV) scripts/bootstrap.sh

## make train        train the MobileNet-style CNN (DATASET=mnist5k|digits|mnist|fashion_mnist|cifar10|folder:PATH|npz:PATH)
train: venv
	$(PY) -m host train --dataset "$$DATASET" --name "$$NAME" $(TRAIN_FLAGS)

## make quantize     convert to fp32/dynamic/fp16/int8 .tflite, evaluate every variant, write the bundle
##                   MODEL=m.keras|m.h5|m.onnx|m.pt2|net.py:fn|saved_model/ CALIB=... EVAL=... [LABELS=] [PREPROCESS=]
##                   [INPUT=1x3xHxW] [WEIGHTS=sd.pt]: your own model
quantize: venv $(if $(filter %.onnx %.ONNX,$(MODEL))$(TORCH_MODEL),venv-onnx2tf) $(if $(TORCH_MODEL),venv-torch)
	$(PY) -m host quantize --name "$$NAME" $(QUANTIZE_FLAGS)

## make venv-onnx2tf onnx2tf in its own venv (ONNX2TF_VENV=~/.cache/edgekit/onnx2tf-venv); quantize MODEL=*.onnx runs it
venv-onnx2tf:
	@VENV_DIR="$(ONNX2TF_VENV)" scripts/venv-tool.sh

## make venv-torch   PyTorch (CPU build, pinned) in its own venv (TORCH_VENV=); quantize MODEL=m.pt2|net.py:fn WEIGHTS= INPUT=
venv-torch:
	@VENV_DIR="$(TORCH_VENV)" REQUIREMENTS=requirements-torch.txt CHECK="import torch" scripts/venv-tool.sh

## make bundle       MODEL=a.tflite[,b.tflite] LABELS=labels.txt EVAL=folder:DIR NAME=zoo: .tflite files as they are
bundle: venv
	$(PY) -m host bundle --name "$$NAME" --model "$$MODEL" $(DATA_FLAGS)

## make evaluate     re-evaluate the bundle's variants on the host and print the summary
evaluate: venv
	$(PY) -m host evaluate --name "$$NAME"

## make agent        build the single-file device agent (build/agent.pyz)
agent: venv
	$(PY) -m device.build build/agent.pyz

## make deploy       ship runtime, agent and bundle to HOST (or HOSTS=a,b,c); a running service follows
##                   ROLLOUT=canary|rolling BATCH=N MAX_FAIL=P: batch by batch, each benched; KEEP=3 releases
deploy: venv
	$(PY) -m deploy push --bundle "$$BUNDLE" $(TARGET_FLAGS) $(RUNTIME_FLAGS) $(call opt,EXTRAS,--extras) $(call opt,KEEP,--keep) \
	    $(call opt,ROLLOUT,--rollout) $(call opt,BATCH,--batch) $(call opt,MAX_FAIL,--max-fail)

## make bench        run info/bench/eval on the board(s), store results/<host>/...json
##                   VIDEO=clip.mp4: also the frame pipeline end to end on it (fps, latency, stage split; OpenCV on the board)
bench: venv
	$(PY) -m deploy bench --bundle "$$BUNDLE" $(TARGET_FLAGS) $(call opt,VIDEO,--video) $(RUNTIME_FLAGS)
	@$(PY) -m host score --bundle "$$BUNDLE" --newest

## make profile      per-operator latency + memory plan on the board(s) (VARIANT=int8: one variant)
profile: venv
	$(PY) -m deploy profile --bundle "$$BUNDLE" $(TARGET_FLAGS) $(call opt,VARIANT,--variant)

## make report       reports/benchmark_report.md and plots from results/
report: venv
	$(PY) -m host report

## make compare      A=result.json B=result.json: deltas, noise, non-zero exit on regression
compare: venv
	$(PY) -m host compare "$$A" "$$B"

## make score        BUNDLE=artifacts/<name> [RESULTS=results/<host>/<file>.json] (a bench of a task bundle; without
##                   RESULTS each board's newest): mAP / OKS AP / mIoU / a raw model's output errors, board vs host;
##                   or EVAL=coco:JSON:IMAGES|yolo:DIR|masks:IMAGES:MASKS RESULTS="board.json host.json" (infer results)
score: venv
	$(PY) -m host score $(if $(EVAL),"$$EVAL",--bundle "$$BUNDLE") $$RESULTS

# make perf and make search-perf measure the offline default bundle: trained and quantized on first use
DEFAULT_BUNDLE := $(or $(EDGEKIT_ARTIFACTS),artifacts)/mnist5k/manifest.json
$(DEFAULT_BUNDLE): | venv
	$(PY) -m host train --dataset mnist5k --name mnist5k
	$(PY) -m host quantize --name mnist5k

## make perf         the toolkit's own figures -> reports/perf.json (ends with search-perf, ~40 min; SEARCH_PERF=0 skips it)
perf: venv venv-onnx2tf $(DEFAULT_BUNDLE)
	$(PY) -m host perf
	$(if $(filter 0 no false,$(SEARCH_PERF)),@echo "make perf: search-perf skipped (SEARCH_PERF=0)",$(PY) -m host search-perf)

## make torch-mnist  PyTorch's MNIST CNN: PyTorch FP32/dynamic INT8 vs ORT and LiteRT FP32/INT8 -> reports/torch_mnist.md
torch-mnist: venv venv-onnx2tf venv-torch
	$(PY) -m host.perf.torch_mnist

## make search       most accurate INT8 model within budgets, measured on HOST (MAX_P50_US= ... WORKERS= STORAGE=)
search: venv
	$(PY) -m host search --dataset "$$DATASET" $(SEARCH_FLAGS)

## make search-worker join the study NAME in STORAGE= from this host (HOSTS= its own boards; WORKERS=N processes)
search-worker: venv
	@test -n "$$STORAGE" || { echo "make search-worker: set STORAGE= (the search's database URL) and NAME="; exit 2; }
	@n=$${WORKERS:-1}; for i in $$(seq 1 $$n); do \
	  $(PY) -m host search-worker --name "$(SEARCH_NAME)" --storage "$$STORAGE" \
	    $(if $(HOSTS),--hosts "$$HOSTS") & done; wait

## make search-dashboard optuna-dashboard for the study NAME (STORAGE= or the SQLite file) on 127.0.0.1:PORT
search-dashboard: venv
	$(VENV)/bin/optuna-dashboard --host 127.0.0.1 --port $${PORT:-8080} \
	  "$$($(PY) -c 'import sys; from host.search.study import storage_url as u; print(u(sys.argv[1], sys.argv[2] or None))' "$(SEARCH_NAME)" "$$STORAGE")"

## make search-perf  the search's figures (mnist5k, HOST=local, budgets 0.4x/0.5x the default p50, WORKERS=2 vs 1) -> reports/perf.json
search-perf: venv $(DEFAULT_BUNDLE)
	$(PY) -m host search-perf

## make board        build/start emulated aarch64 board(s) (root; SUITE=trixie (Debian 13, default)|bookworm (Debian 12), BOARDS=N, OFFLINE=1)
board: venv
	$(PY) -m emuboard start $(call opt,SUITE,--suite) $(call opt,BOARDS,--boards) $(if $(OFFLINE),--offline) $(call opt,BOARD_CPU,--cpu)

## make board-stop   tear every emulated board down (all suites); make board-status lists them
board-stop: venv
	$(PY) -m emuboard stop
board-status: venv
	$(PY) -m emuboard status

## make serve        start `agent serve` on HOST; make stop stops it
serve: venv
	$(PY) -m deploy serve --bundle "$$BUNDLE" $(TARGET_FLAGS)
stop: venv
	$(PY) -m deploy stop $(TARGET_FLAGS)

## make releases     the releases on HOST: id, bundle, created, size, which is current and which is served
releases: venv
	$(PY) -m deploy releases $(TARGET_FLAGS)

## make rollback     back to the previous release on HOST (or RELEASE=id); the running service follows
rollback: venv
	$(PY) -m deploy rollback $(TARGET_FLAGS) $(call opt,RELEASE,--release)

## make fuzz         the longer reliability run -> reports/reliability.md
fuzz: venv
	FUZZ_CASES=$${FUZZ_CASES:-500} $(PY) -m pytest -q tests/reliability

## make test         the test suite (what CI runs)
test: venv
	$(PY) -m pytest -q --durations=15 tests

## make mutate       mutation testing of the figure/safety code -> reports/mutation.md (slow, not CI; MODULES=...)
mutate: venv $(VENV)/.requirements-dev.sha256
	$(PY) scripts/mutate.py $$MODULES
$(VENV)/.requirements-dev.sha256: requirements-dev.txt $(VENV)/.requirements.sha256
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 | grep -v "is ignored" || true
	@$(VENV)/bin/python -c "import mutmut" && sha256sum requirements-dev.txt | cut -d' ' -f1 > $@

clean:
	rm -rf build artifacts results reports .pytest_cache
