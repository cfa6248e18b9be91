#!/usr/bin/env bash
# Compares two builds of translate_bench back to back, alternating A, B, A, B, ...: the
# 2-core machine's speed changes by up to 2x within minutes, so only figures taken side
# by side compare. Each line is one pair of medians (of 21 full passes at 1,000 routes).
#
#   scripts/bench-ab.sh OLD/translate_bench NEW/translate_bench [PAIRS] [ROUTES]
set -euo pipefail
a=$1 b=$2 pairs=${3:-6} routes=${4:-1000}
median() {
  "$1" --routes "$routes" --no-wasm --runs 21 --only full |
    sed -n 's/^full (native static): *\([0-9.]*\) ms.*/\1/p'
}
for _ in $(seq "$pairs"); do
  echo "A $(median "$a") ms   B $(median "$b") ms"
done
