#!/usr/bin/env sh
set -e

cct train --solver=examples/mnist/mnist_autoencoder_solver_adadelta.prototxt "$@"
