#!/usr/bin/env sh
# Train LeNet on the digits LMDBs made by create_digits.py (run from the repository root).
set -e
cct train --solver=examples/digits/lenet_solver.prototxt "$@"
