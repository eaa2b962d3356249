#!/bin/sh
# Installs the build into a fresh prefix, then builds and runs consumers against that
# prefix alone: a C11 program with pkg-config (against the shared library, and against
# the static one with `pkg-config --static`), and a CMake project with
# find_package(cdpcore) linking the shared and the static library. All four must print
# the same OneID for the same record. Also checks the shared library's SONAME (the major
# version) and that the CMake version file refuses other major versions.
# usage: install_consumers.sh BUILD_DIR CONFIG LIBDIR WORK_DIR TEST_SRC_DIR CMAKE CC CXX VERSION
set -eu
build=$1 config=$2 libdir=$3 work=$4 src=$5 cmake=$6 cc=$7 cxx=$8 version=$9

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
prefix=$work/prefix
"$cmake" --install "$build" --config "$config" --prefix "$prefix" >"$work/install.log"

echo "== SONAME and version file"
major=${version%%.*}
soname=$(readelf -d "$prefix/$libdir/libcdpcore.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
echo "SONAME $soname"
if [ "$soname" != "libcdpcore.so.$major" ]; then
  echo "libcdpcore.so has SONAME '$soname', expected libcdpcore.so.$major" >&2
  exit 1
fi
"$cmake" -DPREFIX="$prefix" -DVERSION="$version" -P "$src/check_version.cmake"

echo "== C11, pkg-config"
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
# shellcheck disable=SC2046 # pkg-config's output is meant to be split into words
"$cc" -std=c11 -Wall -Wextra -Werror -o "$work/consumer_c" "$src/consumer.c" \
      $(pkg-config --cflags --libs cdpcore)
LD_LIBRARY_PATH="$prefix/$libdir" "$work/consumer_c" >"$work/out_c"
cat "$work/out_c"

echo "== C11, pkg-config --static (libcdpcore.a and its Libs.private)"
# -lcdpcore would pick the shared library where both are installed; name the archive.
static_libs=$(pkg-config --static --libs cdpcore | sed 's/-lcdpcore\b/-l:libcdpcore.a/')
# shellcheck disable=SC2086 # pkg-config's output is meant to be split into words
"$cc" -std=c11 -Wall -Wextra -Werror -o "$work/consumer_c_static" "$src/consumer.c" \
      $(pkg-config --cflags cdpcore) $static_libs
if readelf -d "$work/consumer_c_static" | grep -q 'libcdpcore'; then
  echo "the static consumer still needs libcdpcore.so" >&2
  exit 1
fi
"$work/consumer_c_static" >"$work/out_c_static"
cat "$work/out_c_static"

echo "== C++20, find_package(cdpcore)"
"$cmake" -S "$src/consumer" -B "$work/consumer" -DCMAKE_BUILD_TYPE="$config" \
         -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" >"$work/consumer.log"
"$cmake" --build "$work/consumer" >>"$work/consumer.log"
"$work/consumer/consumer_shared" >"$work/out_shared"
"$work/consumer/consumer_static" >"$work/out_static"
cat "$work/out_shared" "$work/out_static"

oneids=$(sed 's/.*OneID //' "$work/out_c" "$work/out_c_static" "$work/out_shared" "$work/out_static" | sort -u)
if [ "$(echo "$oneids" | wc -l)" -ne 1 ]; then
  echo "the consumers disagree on the OneID:" $oneids >&2
  exit 1
fi
