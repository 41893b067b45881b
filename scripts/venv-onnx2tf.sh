#!/usr/bin/env bash
# onnx2tf's own venv (requirements-onnx2tf.txt), built on first use beside the main one: its pins
# (TensorFlow 2.19, protobuf 4, ...) would break the main .venv. Idempotent: a stamp, written last,
# records the requirements hash it was built from; a failed install removes the venv again.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${ONNX2TF_VENV:?ONNX2TF_VENV not set}
PY=${PYTHON_BOOTSTRAP:-python3}
want=$(sha256sum requirements-onnx2tf.txt | cut -d' ' -f1)
if [ -f "$DEST/.requirements.sha256" ] && [ "$(cat "$DEST/.requirements.sha256")" = "$want" ]; then exit 0; fi
echo "venv-onnx2tf: creating $DEST from requirements-onnx2tf.txt (first use only, ~800 MB)"
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
"$PY" -m venv "$DEST"
"$DEST/bin/pip" install -q --disable-pip-version-check -r requirements-onnx2tf.txt 2>&1 \
  | grep -v -E "^WARNING: Location .* is ignored" || true
if ! "$DEST/bin/onnx2tf" -h >/dev/null 2>&1; then
  rm -rf "$DEST"
  echo "venv-onnx2tf: onnx2tf did not install (pip failed above)" >&2
  exit 1
fi
echo "$want" > "$DEST/.requirements.sha256"
