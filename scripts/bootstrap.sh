#!/usr/bin/env bash
# Self-install for a fresh machine: system packages the tests need (when root) and the
# pinned .venv. Idempotent: a stamp file records the requirements hash it was built from.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON_BOOTSTRAP:-python3}

need_apt=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${need_apt[*]} (apt)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: note: ${need_apt[*]} missing and not root; SSH tests will be skipped" >&2
  fi
fi

stamp="$VENV/.requirements.sha256"
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
echo "bootstrap: creating $VENV from requirements.txt (first run only)"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt 2>&1 \
  | grep -v -E "^WARNING: Location .* is ignored" || true
"$VENV/bin/python" -c "import tensorflow, ai_edge_litert, fabric, numpy" 2>/dev/null \
  || { echo "bootstrap: the venv is incomplete (pip failed above)" >&2; exit 1; }
echo "$want" > "$stamp"
