#!/usr/bin/env sh
set -e

cct train --solver=examples/mnist/lenet_solver_rmsprop.prototxt "$@"
