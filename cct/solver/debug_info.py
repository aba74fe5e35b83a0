"""The solver's ``debug_info: true`` lines (Net::ForwardDebugInfo and BackwardDebugInfo in Caffe's
net.cpp): after each layer, the mean absolute value of its tops and params (forward) or of the
bottom and param gradients it computed (backward).

Caffe prints them for the train net on display iterations and, since Solver::InitTestNets turns
debug_info on for test nets permanently, for every test forward pass.
"""
import numpy as np

from cct.log import logger


def _mean_abs(array):
    return float(np.abs(array).sum(dtype=np.float64) / array.size) if array.size else 0.0


class DebugInfo:
    """Per-layer callbacks on ``net`` that log while ``enabled`` is true."""

    def __init__(self, net, enabled=False):
        self.net = net
        self.enabled = enabled
        net.after_forward(self._forward)
        net.after_backward(self._backward)

    def _forward(self, layer_id):
        if not self.enabled:
            return
        net = self.net
        name = net.layer_names[layer_id]
        for blob, blob_id in zip(net.top_vecs[layer_id], net.top_ids[layer_id]):
            logger.info('    [Forward] Layer %s, top blob %s data: %g', name,
                        net.blob_names[blob_id], _mean_abs(blob.data))
        for blob, param_id in zip(net.layers[layer_id].blobs, net.param_id_vecs[layer_id]):
            logger.info('    [Forward] Layer %s, param blob %s data: %g', name,
                        net.param_display_names[param_id], _mean_abs(blob.data))

    def _backward(self, layer_id):
        if not self.enabled or not self.net.layer_need_backward[layer_id]:
            return
        net = self.net
        name = net.layer_names[layer_id]
        for wanted, blob, blob_id in zip(net.bottom_need_backward[layer_id],
                                         net.bottom_vecs[layer_id], net.bottom_ids[layer_id]):
            if wanted:
                logger.info('    [Backward] Layer %s, bottom blob %s diff: %g', name,
                            net.blob_names[blob_id], _mean_abs(blob.diff))
        layer = net.layers[layer_id]
        for wanted, blob, param_id in zip(layer.param_propagate_down, layer.blobs,
                                          net.param_id_vecs[layer_id]):
            if wanted:
                logger.info('    [Backward] Layer %s, param blob %s diff: %g', name,
                            net.param_display_names[param_id], _mean_abs(blob.diff))
