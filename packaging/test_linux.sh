#!/usr/bin/env bash
# Install the .deb built by build_linux.sh on this machine, use it, and remove it.
# Checks: the installed faceapp-cli matches a real photo with the bundled models (on
# the default runtime, then on OpenVINO and on onnxruntime),
# the installed GUI starts offscreen and keeps running for a few seconds, and
# `dpkg -r` leaves nothing behind. Needs root (or sudo) and dpkg.
set -euo pipefail
cd "$(dirname "$0")/.."
DEB=${1:-$(ls -t dist/faceapp_*_amd64.deb | head -1)}
SUDO=$([[ $(id -u) == 0 ]] && echo "" || echo sudo)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export FACEAPP_CONFIG="$TMP/settings.toml" FACEAPP_DATA_DIR="$TMP/data"

$SUDO dpkg -i "$DEB" >/dev/null || $SUDO apt-get install -y -f >/dev/null
command -v faceapp-cli | grep -q /usr/bin/faceapp-cli
test -f /usr/share/applications/faceapp.desktop

# Run from elsewhere, so nothing of the source tree can be picked up.
cp tests/data/obama.jpg tests/data/obama2.jpg tests/data/t1.jpg "$TMP/"
cd "$TMP"
faceapp-cli info | head -4
faceapp-cli enroll Obama obama.jpg
t0=$(date +%s.%N)
faceapp-cli --json match obama2.jpg > match.json
t1=$(date +%s.%N)
python3 -c "import json;d=json.load(open('match.json'));f=d[0]['faces'][0];assert f['person']=='Obama' and f['decision']=='match',d;print('match ok:',f)"
echo "installed faceapp-cli match, cold start: $(python3 -c "print(round($t1-$t0,2))") s"
# Both CPU runtimes the package carries (the bundle keeps only their CPU parts).
for p in openvino cpu; do
  faceapp-cli --provider $p --json match obama2.jpg > match-$p.json
  python3 -c "import json,sys;d=json.load(open(sys.argv[1]));f=d[0]['faces'][0];assert f['person']=='Obama' and f['decision']=='match',d;print('$p match ok:',f['similarity'])" match-$p.json
done
for i in 1 2 3; do
  /usr/bin/time -f "cold start run $i: %e s" faceapp-cli match obama2.jpg >/dev/null
done

mkdir frames && cp obama.jpg obama2.jpg frames/
set +e
QT_QPA_PLATFORM=offscreen timeout 8 faceapp --source frames 2> gui.log
rc=$?
set -e
if [[ $rc != 124 ]]; then echo "the installed GUI exited early (rc=$rc):"; cat gui.log; exit 1; fi
echo "GUI ran 8 s offscreen and was stopped"
[[ -s gui.log ]] && { echo "its stderr:"; cat gui.log; }
cd - >/dev/null

$SUDO dpkg -r faceapp >/dev/null
for p in /opt/faceapp /usr/bin/faceapp /usr/bin/faceapp-cli /usr/share/applications/faceapp.desktop \
         /usr/share/icons/hicolor/256x256/apps/faceapp.png; do
  if [[ -e $p || -L $p ]]; then echo "left behind after removal: $p" >&2; exit 1; fi
done
echo "removed cleanly"
