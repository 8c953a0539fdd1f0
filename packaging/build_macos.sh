#!/usr/bin/env bash
# Build faceapp for macOS: a PyInstaller bundle (faceapp.app, with faceapp-cli inside at
# faceapp.app/Contents/MacOS/faceapp-cli) in a .dmg. Mirrors build_linux.sh.
#
#   packaging/build_macos.sh
#
# Needs Python 3.10+, Xcode's command-line tools (hnswlib has no wheels) and hdiutil.
# onnxruntime-gpu does not exist for macOS; --gpu is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "${1:-}" == "--gpu" ]] && { echo "no GPU build on macOS (onnxruntime-gpu has no macOS wheels)" >&2; exit 2; }
VERSION=$(python3 -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
BUILD=build/macos
mkdir -p "$BUILD" dist
python3 -m venv "$BUILD/venv"
PY="$BUILD/venv/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q ".[gui]" "pyinstaller>=6.10"
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN --distpath "$BUILD/dist" --workpath "$BUILD/work" \
  packaging/faceapp.spec
APP="$BUILD/dist/faceapp.app"
for f in Contents/Resources/models/sface_fp32.onnx Contents/Resources/models/face_reidentification_retail_0095.onnx \
         Contents/Resources/models/fused_sface_omz.json Contents/MacOS/faceapp-cli; do
  [[ -e "$APP/$f" ]] || { echo "missing from the app: $f" >&2; exit 1; }
done
"$APP/Contents/MacOS/faceapp-cli" --version
STAGE="$BUILD/dmg"
rm -rf "$STAGE" && mkdir -p "$STAGE"
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
hdiutil create -volname faceapp -srcfolder "$STAGE" -ov -format UDZO "dist/faceapp-$VERSION-macos.dmg"
echo "dmg: dist/faceapp-$VERSION-macos.dmg"
