#!/usr/bin/env sh
set -e

cct train --solver=examples/cifar10/cifar10_full_sigmoid_solver_bn.prototxt "$@"
