#!/usr/bin/env sh
set -e

cct train --solver=examples/mnist/lenet_adadelta_solver.prototxt "$@"
