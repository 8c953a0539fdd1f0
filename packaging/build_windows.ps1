# Build faceapp's Windows installer: a PyInstaller one-folder bundle (faceapp.exe and
# faceapp-cli.exe) and an Inno Setup installer with a Start-menu entry and uninstaller.
#
#   powershell -ExecutionPolicy Bypass -File packaging\build_windows.ps1          # CPU
#   powershell -ExecutionPolicy Bypass -File packaging\build_windows.ps1 -Gpu     # onnxruntime-gpu
#
# Needs Python 3.10+ on PATH, the Visual C++ Build Tools (hnswlib has no wheels) and
# Inno Setup 6 (ISCC.exe on PATH or in its default folder). Mirrors build_linux.sh.
param([switch]$Gpu)
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
$version = python -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])"
$variant = if ($Gpu) { "-gpu" } else { "" }
$build = "build\windows$variant"
New-Item -ItemType Directory -Force -Path $build, dist | Out-Null

python -m venv "$build\venv"
$py = "$build\venv\Scripts\python.exe"
& $py -m pip install -q --upgrade pip
& $py -m pip install -q ".[gui]" "pyinstaller>=6.10"
if ($Gpu) { & $py -m pip uninstall -q -y onnxruntime; & $py -m pip install -q onnxruntime-gpu }

& $py -m PyInstaller --noconfirm --clean --log-level WARN --distpath "$build\dist" --workpath "$build\work" packaging\faceapp.spec
$internal = "$build\dist\faceapp\_internal"
foreach ($f in "models\manifest.json", "models\sface_fp32.onnx", "models\face_detection_full_range.onnx",
               "models\face_detection_short_range.onnx", "models\face_reidentification_retail_0095.onnx",
               "models\fused_sface_omz.json", "faceapp\data\calibration.json") {
  if (-not (Test-Path "$internal\$f")) { throw "missing from the bundle: $f" }
}
if (-not (Get-ChildItem "$internal\onnxruntime\capi\onnxruntime*.dll")) { throw "onnxruntime's library is missing" }
& "$build\dist\faceapp\faceapp-cli.exe" --version

$iscc = (Get-Command ISCC.exe -ErrorAction SilentlyContinue).Source
if (-not $iscc) { $iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
& $iscc "/DAppVersion=$version" "/DVariant=$variant" "/DSourceDir=$((Resolve-Path "$build\dist\faceapp").Path)" `
  "/O$((Resolve-Path dist).Path)" packaging\windows\faceapp.iss
Write-Host "installer: dist\faceapp$variant-$version-setup.exe"
