#!/usr/bin/env bash
# Build faceapp's Linux installers: a PyInstaller one-folder bundle holding the GUI
# `faceapp` and `faceapp-cli`, then dist/faceapp-<version>-linux-x86_64.tar.gz and
# dist/faceapp_<version>_amd64.deb (installs under /opt/faceapp, puts both programs on
# PATH, adds a desktop entry and icon, and removes cleanly).
#
#   packaging/build_linux.sh          # CPU build (onnxruntime)
#   packaging/build_linux.sh --gpu    # GPU build (onnxruntime-gpu; CUDA libraries not bundled)
#
# Needs python3 (3.11+), a C++ compiler (hnswlib has no wheels) and dpkg-deb.
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
python3 -m venv "$BUILD/venv"
PY="$BUILD/venv/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q ".[gui]" "pyinstaller>=6.10"
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
         models/face_detection_short_range.onnx cv2 \
         'onnxruntime/capi/onnxruntime_pybind11_state*.so' 'hnswlib*.so' \
         'openvino/libs/libopenvino.so*' openvino/libs/libopenvino_intel_cpu_plugin.so \
         'openvino/libs/libopenvino_onnx_frontend.so*' 'openvino/libs/libopenvino_ir_frontend.so*' \
         'openvino/_pyopenvino*.so' PySide6/Qt/plugins/platforms/libqxcb.so \
         PySide6/Qt/plugins/platforms/libqwayland.so PySide6/Qt/plugins/platforms/libqoffscreen.so; do
  compgen -G "$internal/$f" >/dev/null || { echo "missing from the bundle: $f" >&2; exit 1; }
done
for f in mediapipe ai_edge_litert; do
  [[ ! -e "$internal/$f" ]] || { echo "must not be in the bundle: $f" >&2; exit 1; }
done
# Every library a bundled binary links to must be in the bundle or on the system, unless it was
# never part of the installed packages either (a desktop library this machine lacks, CUDA): a
# library that is missing here but lies in the build environment was left out by mistake.
SITE=$("$PY" -c "import sysconfig;print(sysconfig.get_paths()['purelib'])")
missing=$(find "$internal" -type f -name "*.so*" -exec readelf -d {} + 2>/dev/null \
  | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u | while read -r lib; do
      [[ -n $(find "$internal" -name "$lib" -xtype f -print -quit) ]] && continue
      ldconfig -p | grep -q "^[[:space:]]*$lib " && continue
      [[ -n $(find "$SITE" -name "$lib" -print -quit) ]] && echo "$lib"
    done)
[[ -z $missing ]] || { echo "libraries left out of the bundle but needed:" $missing >&2; exit 1; }
"$BUNDLE/faceapp-cli" --version
# Both CPU runtimes load the embedder from the bundle and agree that two photos show one person.
SMOKE=$(mktemp -d)
for p in openvino cpu; do
  FACEAPP_CONFIG="$SMOKE/settings.toml" FACEAPP_DATA_DIR="$SMOKE/data" XDG_CACHE_HOME="$SMOKE/cache" \
    "$BUNDLE/faceapp-cli" --provider $p --json verify tests/data/obama.jpg tests/data/obama2.jpg > "$SMOKE/$p.json" \
    || { echo "the bundled faceapp-cli --provider $p failed to verify two photos of one person" >&2; exit 1; }
  python3 -c "import json,sys;d=json.load(open(sys.argv[1]));print('$p:',d)" "$SMOKE/$p.json"
done
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
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE_KB/" \
    -e "s/@NAME@/faceapp$VARIANT/" packaging/linux/control.in > "$PKG/DEBIAN/control"
DEB="$DIST/faceapp${VARIANT}_${VERSION}_${ARCH}.deb"
# xz -9 on one thread writes one block with a 64 MiB window: the two embedder graphs hold the same
# weights (38.6 MB), so the second costs next to nothing; several threads would cut the data into
# independent blocks and store the weights twice.
dpkg-deb --root-owner-group -Zxz -z9 --threads-max=1 --build "$PKG" "$DEB" >/dev/null

end=$(date +%s)
echo "== done in $((end - start)) s"
echo "bundle: $(du -sh "$BUNDLE" | cut -f1)  $BUNDLE"
echo "tar.gz: $(du -h "$TARBALL" | cut -f1)  $TARBALL"
echo "deb:    $(du -h "$DEB" | cut -f1)  $DEB"
DEB_BYTES=$(stat -c %s "$DEB")
echo "deb size: $(python3 -c "print(round($DEB_BYTES / 1e6, 1))") MB against a target of $DEB_TARGET_MB MB"
if (( DEB_BYTES > DEB_TARGET_MB * 1000000 )); then echo "warning: the .deb is over the $DEB_TARGET_MB MB target" >&2; fi
