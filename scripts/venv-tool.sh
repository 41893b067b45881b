#!/usr/bin/env bash
# A tool's own venv, built on first use beside the main one, for tools whose pins would break the
# main .venv: onnx2tf (requirements-onnx2tf.txt: TensorFlow 2.19, protobuf 4, ...) and PyTorch
# (requirements-torch.txt: the CPU build). Idempotent: a stamp, written last, records the
# requirements hash it was built from; a failed install removes the venv again.
#   VENV_DIR=path [REQUIREMENTS=requirements-onnx2tf.txt] [CHECK="import onnx2tf"] scripts/venv-tool.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${VENV_DIR:?VENV_DIR not set}
REQ=${REQUIREMENTS:-requirements-onnx2tf.txt}
CHECK=${CHECK:-import onnx2tf}
PY=${PYTHON_BOOTSTRAP:-python3}
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ -f "$DEST/.requirements.sha256" ] && [ "$(cat "$DEST/.requirements.sha256")" = "$want" ]; then exit 0; fi
echo "venv-tool: creating $DEST from $REQ (first use only)"
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
"$PY" -m venv "$DEST"
"$DEST/bin/pip" install -q --disable-pip-version-check -r "$REQ" 2>&1 \
  | grep -v -E "^WARNING: Location .* is ignored" || true
if ! "$DEST/bin/python" -c "$CHECK" >/dev/null 2>&1; then
  rm -rf "$DEST"
  echo "venv-tool: $REQ did not install into $DEST (pip failed above)" >&2
  exit 1
fi
echo "$want" > "$DEST/.requirements.sha256"
