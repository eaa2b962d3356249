#!/bin/sh
# Installs the build into a fresh prefix, then builds and runs consumers against that
# prefix alone: a C11 program with pkg-config, and a CMake project with
# find_package(cdpcore) linking the shared and the static library. All three must print
# the same OneID for the same record.
# usage: install_consumers.sh BUILD_DIR CONFIG LIBDIR WORK_DIR TEST_SRC_DIR CMAKE CC CXX
set -eu
build=$1 config=$2 libdir=$3 work=$4 src=$5 cmake=$6 cc=$7 cxx=$8

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
prefix=$work/prefix
"$cmake" --install "$build" --config "$config" --prefix "$prefix" >"$work/install.log"

echo "== C11, pkg-config"
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
# shellcheck disable=SC2046 # pkg-config's output is meant to be split into words
"$cc" -std=c11 -Wall -Wextra -Werror -o "$work/consumer_c" "$src/consumer.c" \
      $(pkg-config --cflags --libs cdpcore)
LD_LIBRARY_PATH="$prefix/$libdir" "$work/consumer_c" >"$work/out_c"
cat "$work/out_c"

echo "== C++20, find_package(cdpcore)"
"$cmake" -S "$src/consumer" -B "$work/consumer" -DCMAKE_BUILD_TYPE="$config" \
         -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" >"$work/consumer.log"
"$cmake" --build "$work/consumer" >>"$work/consumer.log"
"$work/consumer/consumer_shared" >"$work/out_shared"
"$work/consumer/consumer_static" >"$work/out_static"
cat "$work/out_shared" "$work/out_static"

oneids=$(sed 's/.*OneID //' "$work/out_c" "$work/out_shared" "$work/out_static" | sort -u)
if [ "$(echo "$oneids" | wc -l)" -ne 1 ]; then
  echo "the consumers disagree on the OneID:" $oneids >&2
  exit 1
fi
