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
# libpython and the locally compiled hnswlib carry debug info (~30 MB); the wheels' own
# libraries are stripped already (and stripping the auditwheel-patched ones breaks them).
strip --strip-debug "$internal"/libpython3*.so* "$internal"/hnswlib*.so
for f in models/manifest.json models/sface_fp32.onnx models/face_detection_full_range.onnx \
         models/face_detection_short_range.onnx cv2; do
  [[ -e "$internal/$f" ]] || { echo "missing from the bundle: $f" >&2; exit 1; }
done
for f in mediapipe ai_edge_litert; do
  [[ ! -e "$internal/$f" ]] || { echo "must not be in the bundle: $f" >&2; exit 1; }
done
ls "$internal"/onnxruntime/capi/libonnxruntime*.so* >/dev/null || { echo "onnxruntime's library is missing" >&2; exit 1; }
ls "$internal"/hnswlib*.so >/dev/null || { echo "the compiled hnswlib is missing" >&2; exit 1; }
ls -d "$internal"/PySide6/Qt/plugins/platforms >/dev/null || { echo "Qt platform plugins are missing" >&2; exit 1; }
"$BUNDLE/faceapp-cli" --version

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
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null

end=$(date +%s)
echo "== done in $((end - start)) s"
echo "bundle: $(du -sh "$BUNDLE" | cut -f1)  $BUNDLE"
echo "tar.gz: $(du -h "$TARBALL" | cut -f1)  $TARBALL"
echo "deb:    $(du -h "$DEB" | cut -f1)  $DEB"
