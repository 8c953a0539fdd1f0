#!/usr/bin/env bash
# GPU checks for the embedder and fine-tuning (see scripts/device_check.py), packed for return.
#
#   scripts/device_check.sh DATA OUT [device_check.py options]
#
# Run from the repository root. DATA holds people/ (aligned crops, one folder per person),
# strangers/ (aligned crops, one person each), parity_crops.npy ((N, 112, 112, 3) uint8)
# and optionally whl/*.whl (packages missing on the machine, installed without network).
# OUT receives results.json, runs.tar.gz (every run's config, split, log and best.json)
# and the chosen run's model.pt in parts of at most 15 MB (cat model.pt.part-* > model.pt).
set -uo pipefail
DATA=$1
OUT=$2
shift 2
PY=${PYTHON:-python3}
CODE=$(cd "$(dirname "$0")/.." && pwd)
if compgen -G "$DATA/whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$DATA"/whl/*.whl || exit 1
fi
export PYTHONPATH="$CODE:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export FACEAPP_MODELS_DIR=${FACEAPP_MODELS_DIR:-$PWD/models}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
WORK=$(mktemp -d)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/device.txt"
# DEVICE_CHECK_TIMEOUT (seconds) stops the checks early enough to pack what they wrote.
${DEVICE_CHECK_TIMEOUT:+timeout "$DEVICE_CHECK_TIMEOUT"} "$PY" "$CODE/scripts/device_check.py" --data "$DATA" --out "$WORK" "$@" 2>&1 | tee -a "$OUT/device.txt"
status=${PIPESTATUS[0]}
cp "$WORK/results.json" "$OUT/" 2>/dev/null
(cd "$WORK" && tar czf "$OUT/runs.tar.gz" --exclude='*.pt' --exclude='*.pt.tmp' .)
chosen=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1])).get('chosen', ''))" "$WORK/results.json" 2>/dev/null)
if [ -n "$chosen" ] && [ -f "$WORK/$chosen/model.pt" ]; then
    split -b 15000000 "$WORK/$chosen/model.pt" "$OUT/model.pt.part-"
    sha256sum "$WORK/$chosen/model.pt" | tee -a "$OUT/device.txt"
fi
exit "$status"
