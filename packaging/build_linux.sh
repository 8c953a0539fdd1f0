#!/usr/bin/env bash
# Build faceapp's Linux installers: a PyInstaller one-folder bundle holding the GUI
# `faceapp` and `faceapp-cli`, then dist/faceapp-<version>-linux-x86_64.tar.gz and
# dist/faceapp_<version>_amd64.deb (installs under /opt/faceapp, puts both programs on
# PATH, adds a desktop entry and icon, and removes cleanly).
#
#   packaging/build_linux.sh          # CPU build (onnxruntime)
#   packaging/build_linux.sh --gpu    # GPU build (onnxruntime-gpu; CUDA libraries not bundled)
#
# Needs python3 (3.11+), a C/C++ compiler, cmake and nasm (hnswlib has no wheels; OpenCV is built
# with only the modules the app uses and a decode-only FFmpeg, see build_opencv.sh), xz, ar and
# dpkg-deb.
set -euo pipefail
cd "$(dirname "$0")/.."
GPU=0
[[ "${1:-}" == "--gpu" ]] && GPU=1
VERSION=$(python3 -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
ARCH=amd64
VARIANT=$([[ $GPU == 1 ]] && echo "-gpu" || echo "")
BUILD=build/linux$VARIANT
DIST=dist
DEB_TARGET_MB=120  # size target for the .deb, reported at the end (MB = 10^6 bytes)
mkdir -p "$BUILD" "$DIST"
start=$(date +%s)

echo "== build environment"
python3 -m venv --clear "$BUILD/venv"
PY="$BUILD/venv/bin/python"
"$PY" -m pip install -q --upgrade pip
OPENCV_WHEEL=$(packaging/build_opencv.sh "$PY" build/opencv)
"$PY" -m pip install -q --force-reinstall --no-deps "$OPENCV_WHEEL"
"$PY" -m pip install -q ".[gui]" "pyinstaller>=6.10"
"$PY" packaging/check_opencv.py
if [[ $GPU == 1 ]]; then
  "$PY" -m pip uninstall -q -y onnxruntime
  "$PY" -m pip install -q onnxruntime-gpu
fi

echo "== PyInstaller bundle"
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$BUILD/dist" --workpath "$BUILD/work" packaging/faceapp.spec
BUNDLE="$BUILD/dist/faceapp"

echo "== checking the bundle"
internal="$BUNDLE/_internal"
# libpython, the standard library's extension modules (both from the build machine's Python) and
# the locally compiled hnswlib carry debug info; the wheels' own libraries are stripped already
# (and stripping the auditwheel-patched ones breaks them: numpy's OpenBLAS then fails to load with
# "ELF load command address/offset not page-aligned").
strip --strip-debug "$internal"/libpython3*.so* "$internal"/python3*/lib-dynload/*.so "$internal"/hnswlib*.so
# What the app loads by name at run time (the spec leaves out much of OpenVINO and Qt; this catches
# a pattern there that goes too far): the models, the onnxruntime binding, the OpenVINO CPU plugin
# with the ONNX frontend (reads the model) and the IR frontend (reads the CPU plugin's model cache
# back), and Qt's X11, Wayland and offscreen platform plugins.
for f in models/manifest.json models/sface_fp32.onnx models/sface_fp32_relu.onnx models/sface_int8.onnx models/face_detection_full_range.onnx \
         models/face_detection_short_range.onnx models/face_reidentification_retail_0095.onnx \
         models/face_reidentification_retail_0095_relu.onnx models/fused_sface_omz.json faceapp/data/calibration.json cv2 \
         'onnxruntime/capi/onnxruntime_pybind11_state*.so' 'hnswlib*.so' \
         'openvino/libs/libopenvino.so*' openvino/libs/libopenvino_intel_cpu_plugin.so \
         'openvino/libs/libopenvino_onnx_frontend.so*' 'openvino/libs/libopenvino_ir_frontend.so*' \
         'openvino/_pyopenvino*.so' PySide6/Qt/plugins/platforms/libqxcb.so \
         PySide6/Qt/plugins/platforms/libqwayland.so PySide6/Qt/plugins/platforms/libqoffscreen.so; do
  compgen -G "$internal/$f" >/dev/null || { echo "missing from the bundle: $f" >&2; exit 1; }
done
# (opencv_python_headless.libs holds the libraries of PyPI's OpenCV build, which build_opencv.sh replaces.)
for f in mediapipe ai_edge_litert opencv_python_headless.libs; do
  [[ ! -e "$internal/$f" ]] || { echo "must not be in the bundle: $f" >&2; exit 1; }
done
# Every library a bundled binary links to must be in the bundle or on the system, unless it was
# never part of the installed packages either (a desktop library this machine lacks, CUDA): a
# library that is missing here but lies in the build environment was left out by mistake.
# EXTERNAL: what bundled binaries link to that the bundle does not carry; SYSTEM: the libraries
# the system's loader knows (read once: /sbin is not on a user's PATH on Debian).
EXTERNAL=$(find "$internal" -type f -name "*.so*" -exec readelf -d {} + 2>/dev/null \
  | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u | while read -r lib; do
      [[ -n $(find "$internal" -name "$lib" -xtype f -print -quit) ]] || echo "$lib"
    done)
SYSTEM=$("$(command -v ldconfig || echo /sbin/ldconfig)" -p)
SITE=$("$PY" -c "import sysconfig;print(sysconfig.get_paths()['purelib'])")
missing=""
for lib in $EXTERNAL; do
  grep -q "^[[:space:]]*$lib " <<< "$SYSTEM" && continue
  [[ -z $(find "$SITE" -name "$lib" -print -quit) ]] || missing+=" $lib"
done
[[ -z $missing ]] || { echo "libraries left out of the bundle but needed:$missing" >&2; exit 1; }
"$BUNDLE/faceapp-cli" --version
# Both CPU runtimes load the embedder from the bundle and agree that two photos show one person.
SMOKE=$(mktemp -d)
for p in openvino cpu; do
  FACEAPP_CONFIG="$SMOKE/settings.toml" FACEAPP_DATA_DIR="$SMOKE/data" XDG_CACHE_HOME="$SMOKE/cache" \
    "$BUNDLE/faceapp-cli" --provider $p --json verify tests/data/obama.jpg tests/data/obama2.jpg > "$SMOKE/$p.json" \
    || { echo "the bundled faceapp-cli --provider $p failed to verify two photos of one person" >&2; exit 1; }
  python3 -c "import json,sys;d=json.load(open(sys.argv[1]));print('$p:',d)" "$SMOKE/$p.json"
done
# The bundled OpenCV reads a video file through FFmpeg: a person enrolled from one photo is named
# in an MP4 made of another.
"$PY" - "$SMOKE/video.mp4" <<'PYEOF'
import sys
import cv2
frame = cv2.imread("tests/data/obama2.jpg")
h, w = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2  # even sides for the MPEG-4 encoder
frame = frame[:h, :w]
out = cv2.VideoWriter(sys.argv[1], cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
assert out.isOpened(), "the bundled OpenCV cannot write MPEG-4 (its FFmpeg lacks the encoder or muxer)"
for _ in range(20):
    out.write(frame)
out.release()
PYEOF
export FACEAPP_CONFIG="$SMOKE/settings.toml" FACEAPP_DATA_DIR="$SMOKE/data" XDG_CACHE_HOME="$SMOKE/cache"
"$BUNDLE/faceapp-cli" enroll Obama tests/data/obama.jpg >/dev/null
"$BUNDLE/faceapp-cli" watch "$SMOKE/video.mp4" --max-frames 15 > "$SMOKE/watch.jsonl"
grep -q '"person": "Obama"' "$SMOKE/watch.jsonl" \
  || { echo "the bundled faceapp-cli did not name Obama in a video file:" >&2; cat "$SMOKE/watch.jsonl" >&2; exit 1; }
echo "video: $(grep -c '"person": "Obama"' "$SMOKE/watch.jsonl") events name Obama"
unset FACEAPP_CONFIG FACEAPP_DATA_DIR XDG_CACHE_HOME
rm -rf "$SMOKE"

echo "== tar.gz"
TARBALL="$DIST/faceapp$VARIANT-$VERSION-linux-x86_64.tar.gz"
tar -C "$BUILD/dist" -czf "$TARBALL" faceapp

echo "== .deb"
PKG="$BUILD/deb"
rm -rf "$PKG"
mkdir -p "$PKG/DEBIAN" "$PKG/opt" "$PKG/usr/bin" "$PKG/usr/share/applications" "$PKG/usr/share/icons/hicolor/256x256/apps"
cp -a "$BUNDLE" "$PKG/opt/faceapp"
ln -s /opt/faceapp/faceapp "$PKG/usr/bin/faceapp"
ln -s /opt/faceapp/faceapp-cli "$PKG/usr/bin/faceapp-cli"
cp packaging/faceapp.png "$PKG/usr/share/icons/hicolor/256x256/apps/faceapp.png"
cp packaging/linux/faceapp.desktop "$PKG/usr/share/applications/faceapp.desktop"
SIZE_KB=$(du -sk "$PKG/opt" | cut -f1)
# Depends: control.in names what Qt's desktop plugins open; to it go the Debian packages of the
# other system libraries that bundled binaries link to, as dpkg knows them on this machine.
listed=$(sed -n 's/^Depends: //p' packaging/linux/control.in | tr -d ' ' | tr ',' '\n')
DEPENDS=$(for lib in $EXTERNAL; do
      path=$(awk -v l="$lib" '$1 == l && /x86-64/ {print $NF; exit}' <<< "$SYSTEM")
      [[ -z $path ]] && continue
      # dpkg knows a file by the path its package ships: /lib/... or /usr/lib/... on merged-/usr.
      { dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null; } | head -1 | cut -d: -f1 || true
    done | sort -u | { grep -vxF "$listed" || true; } | sed 's/^/, /' | tr -d '\n')
echo "depends also on: ${DEPENDS#, }"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE_KB/" \
    -e "s/@NAME@/faceapp$VARIANT/" -e "s/^Depends: .*/&$DEPENDS/" packaging/linux/control.in > "$PKG/DEBIAN/control"
DEB="$DIST/faceapp${VARIANT}_${VERSION}_${ARCH}.deb"
# The .deb is an ar archive of debian-binary, control.tar.xz and data.tar.xz, assembled here rather
# than by dpkg-deb, whose xz cuts data.tar into independent 192 MiB blocks even on one thread: where
# a cut falls between the two fp32 embedder graphs, which hold the same weights (38.7 MB), the
# second costs 25 MB instead of next to nothing. Plain xz on one thread writes a single block with
# a 64 MiB window, so they compress as one wherever they fall; the x86 filter (BCJ) before LZMA2
# suits a package that is mostly x86-64 code. dpkg-deb then reads it back as a check.
DEB_DIR=$(mktemp -d)
echo "2.0" > "$DEB_DIR/debian-binary"
tar -C "$PKG/DEBIAN" --sort=name --owner=0 --group=0 --numeric-owner -cf - . | xz -9 -T1 > "$DEB_DIR/control.tar.xz"
tar -C "$PKG" --exclude=./DEBIAN --sort=name --owner=0 --group=0 --numeric-owner -cf - . \
  | xz --x86 --lzma2=preset=9e -T1 > "$DEB_DIR/data.tar.xz"
rm -f "$DEB"
(cd "$DEB_DIR" && ar rcD data.deb debian-binary control.tar.xz data.tar.xz)
mv "$DEB_DIR/data.deb" "$DEB"
rm -rf "$DEB_DIR"
dpkg-deb --info "$DEB" >/dev/null && dpkg-deb --contents "$DEB" | grep ' ./opt/faceapp/faceapp-cli$' >/dev/null \
  || { echo "dpkg-deb cannot read $DEB" >&2; exit 1; }

end=$(date +%s)
echo "== done in $((end - start)) s"
echo "bundle: $(du -sh "$BUNDLE" | cut -f1)  $BUNDLE"
echo "tar.gz: $(du -h "$TARBALL" | cut -f1)  $TARBALL"
echo "deb:    $(du -h "$DEB" | cut -f1)  $DEB"
DEB_BYTES=$(stat -c %s "$DEB")
echo "deb size: $(python3 -c "print(round($DEB_BYTES / 1e6, 1))") MB against a target of $DEB_TARGET_MB MB"
if (( DEB_BYTES > DEB_TARGET_MB * 1000000 )); then echo "warning: the .deb is over the $DEB_TARGET_MB MB target" >&2; fi
