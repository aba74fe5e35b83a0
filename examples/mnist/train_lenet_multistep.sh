#!/usr/bin/env sh
set -e

cct train --solver=examples/mnist/lenet_multistep_solver.prototxt "$@"
