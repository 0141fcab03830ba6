#!/bin/bash
# build-tree.sh SOURCE TREE [LAUNCHER]: configures and builds the sanitizer
# tree: clang++, ASan+UBSan (no recovery), the libFuzzer harnesses. -O1 and
# line tables only: quicker to build, and reports still name lines; no
# NDEBUG, so assert() checks too. LAUNCHER is e.g. ccache.
set -euo pipefail
source=$1 tree=$2 launcher=${3:-}
cmake -S "$source" -B "$tree" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DBUILDYARD_SANITIZE=ON -DBUILDYARD_FUZZ=ON ${launcher:+-DCMAKE_CXX_COMPILER_LAUNCHER="$launcher"}
cmake --build "$tree" -j"${BUILDYARD_SANITIZE_JOBS:-2}"
