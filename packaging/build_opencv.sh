#!/usr/bin/env bash
# Build the OpenCV wheel that the Linux installers bundle, and print its path.
#
#   packaging/build_opencv.sh PYTHON WHEEL_CACHE
#
# PyPI's opencv-python-headless carries every OpenCV module (DNN, calibration, G-API, ...) with a
# full FFmpeg, AV1/VP9 encoders and OpenBLAS: 179 MB in the bundle, 41 MB of the .deb. faceapp
# calls only core, imgproc (warps, resizing, colour), imgcodecs (JPEG face crops) and videoio
# (cameras through V4L2; video files and streams through FFmpeg). This builds the same OpenCV
# source release with those modules alone, without IPP, OpenCL, LAPACK or the image formats the
# app never reads through OpenCV (photos are decoded by Pillow), and with an FFmpeg compiled in
# that only decodes: H.264, HEVC, VP8/VP9, MPEG-1/2/4 and MJPEG from MP4/MOV, Matroska/WebM, AVI,
# MPEG-TS/PS and FLV files and RTSP/RTP/HTTP streams (plus the MPEG-4 encoder and MP4 muxer, for
# the installer's own video check). FFmpeg (LGPL-2.1+) is Debian's source release of it, built
# statically into cv2: another FFmpeg source is a change of FFMPEG_VERSION and FFMPEG_SHA256 below.
#
# The wheel keeps the name and version of the release it is built from, so installing it first
# satisfies faceapp's `opencv-python-headless` requirement. It is cached in WHEEL_CACHE under a key
# of this script's code; a second run prints the cached wheel (pip's own wheel cache is not used:
# it knows the source release, not the modules it was built with). Needs a C/C++ compiler, cmake,
# make, nasm, pkg-config and unzip (Debian: apt-get install build-essential cmake nasm pkg-config unzip);
# 11 minutes on two cores here.
set -euo pipefail
PY=${1:?usage: build_opencv.sh PYTHON WHEEL_CACHE}
CACHE=$(mkdir -p "${2:?usage: build_opencv.sh PYTHON WHEEL_CACHE}" && cd "$2" && pwd)
OPENCV_VERSION=5.1.0.95
OPENCV_SHA256=9002add14b121b9a0d64dcaff48e5cac69a7987efcf2847f7db075c2d3b9633b  # the sdist on PyPI
FFMPEG_VERSION=5.1.9
FFMPEG_SHA256=d9b593bb2ba93d4b50f74177e0cdcd41747e708596367deed0c30348a71dd176  # ffmpeg_5.1.9.orig.tar.xz
FFMPEG_URLS=("http://deb.debian.org/debian-security/pool/updates/main/f/ffmpeg/ffmpeg_$FFMPEG_VERSION.orig.tar.xz"
             "http://deb.debian.org/debian/pool/main/f/ffmpeg/ffmpeg_$FFMPEG_VERSION.orig.tar.xz")
# features is not called by faceapp: OpenCV's typing-stub generator fails without it, and the
# wheel's installer then stops for want of the stubs.
MODULES=core,imgproc,imgcodecs,videoio,features,python3
OFF=(IPP LAPACK EIGEN OPENCL GSTREAMER 1394 TIFF WEBP OPENJPEG JASPER OPENEXR AVIF GDAL GDCM TBB PROTOBUF
     ITT FASTCV KLEIDICV OBSENSOR VA VA_INTEL OPENVX HALIDE VTK CUDA SPNG)

key=$(grep -v '^ *#' "$0" | sha256sum | cut -c1-16)  # comments may change without a rebuild
out="$CACHE/$key"

# A wheel counts (new or cached) only if its cv2 was built with FFmpeg and V4L2: cmake carries on
# without FFmpeg when it cannot find it. The build information is a string inside the module.
verified() {
  local info
  info=$(unzip -p "$1" 'cv2/cv2*.so' | grep -a -o -E '(FFMPEG|v4l/v4l2): +[A-Z]+' | sort -u | tr -s ' ')
  [[ $info == *"FFMPEG: YES"* && $info == *"v4l/v4l2: YES"* ]] \
    || { echo "$1 was built without FFmpeg or V4L2 (${info//$'\n'/, }); removed" >&2; rm -f "$1"; return 1; }
}
if wheel=$(compgen -G "$out/opencv_python_headless-$OPENCV_VERSION-*.whl") && verified "$wheel"; then echo "$wheel"; exit 0; fi
for tool in nasm pkg-config unzip; do
  command -v $tool >/dev/null || { echo "building OpenCV with FFmpeg needs $tool: apt-get install $tool" >&2; exit 1; }
done
work="$out/work"
rm -rf "$work" && mkdir -p "$work"
jobs=$(nproc)

echo "== FFmpeg $FFMPEG_VERSION (decoders only) into $work/ffmpeg" >&2
for url in "${FFMPEG_URLS[@]}"; do curl -fsSL -o "$work/ffmpeg.tar.xz" "$url" && break; done
[[ -s "$work/ffmpeg.tar.xz" ]] || { echo "cannot download FFmpeg $FFMPEG_VERSION's source from Debian; set FFMPEG_VERSION and FFMPEG_SHA256 in $0 to Debian's current release" >&2; exit 1; }
echo "$FFMPEG_SHA256  $work/ffmpeg.tar.xz" | sha256sum -c --quiet - >&2
tar -xJf "$work/ffmpeg.tar.xz" -C "$work"
(
  cd "$work/ffmpeg-$FFMPEG_VERSION"
  ./configure --prefix="$work/ffmpeg" --enable-static --disable-shared --enable-pic \
    --disable-programs --disable-doc --disable-avdevice --disable-avfilter --disable-postproc --disable-swresample \
    --disable-everything --disable-autodetect --disable-debug \
    --enable-decoder=h264,hevc,mpeg4,h263,mjpeg,vp8,vp9,mpeg1video,mpeg2video \
    --enable-parser=h264,hevc,mpeg4video,mjpeg,vp8,vp9,mpegvideo,h263 \
    --enable-demuxer=mov,matroska,avi,mpegts,flv,rtsp,sdp,rtp,h264,hevc,mjpeg,mpegps,m4v \
    --enable-protocol=file,rtp,tcp,udp,http \
    --enable-bsf=h264_mp4toannexb,hevc_mp4toannexb,mpeg4_unpack_bframes \
    --enable-encoder=mpeg4 --enable-muxer=mp4 > "$work/ffmpeg.log" 2>&1 \
    && make -j"$jobs" >> "$work/ffmpeg.log" 2>&1 && make install >> "$work/ffmpeg.log" 2>&1
) || { tail -30 "$work/ffmpeg.log" >&2; echo "FFmpeg did not build (log above)" >&2; exit 1; }

echo "== OpenCV $OPENCV_VERSION ($MODULES)" >&2
args="-DBUILD_LIST=$MODULES -DWITH_FFMPEG=ON -DOPENCV_FFMPEG_ENABLE_LIBAVDEVICE=OFF -DWITH_V4L=ON"
args+=" -DBUILD_JPEG=ON -DBUILD_PNG=ON -DBUILD_ZLIB=ON -DBUILD_OPENEXR=OFF"
for o in "${OFF[@]}"; do args+=" -DWITH_$o=OFF"; done
echo "opencv-python-headless==$OPENCV_VERSION --hash=sha256:$OPENCV_SHA256" > "$work/requirements.txt"
ENABLE_HEADLESS=1 CMAKE_ARGS="$args" CMAKE_BUILD_PARALLEL_LEVEL=$jobs PKG_CONFIG_LIBDIR="$work/ffmpeg/lib/pkgconfig" \
  "$PY" -m pip wheel -q --no-cache-dir --no-deps --no-binary opencv-python-headless --require-hashes \
  -r "$work/requirements.txt" -w "$out" >&2
rm -rf "$work"
wheel=$(compgen -G "$out/opencv_python_headless-$OPENCV_VERSION-*.whl")
verified "$wheel"
echo "$wheel"
