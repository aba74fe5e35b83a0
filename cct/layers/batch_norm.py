"""BatchNorm (Caffe's batch_norm_layer.cpp): y = (x − mean) / sqrt(var + eps) per channel (axis 1),
the statistics taken over the batch and every axis after the channels.

Rules that are easy to get wrong:
* There is no learned scale or shift: nets follow BatchNorm with a Scale layer (bias_term: true).
* The three param blobs are statistics, not weights: [0] a running sum of means, [1] a running sum
  of variances (both (channels,)), [2] their normaliser s (1 element). The layer gives each a
  ParamSpec with lr_mult 0 when the prototxt has none; a non-zero lr_mult is an error.
* use_global_stats defaults to false in TRAIN and true in TEST. With global statistics,
  mean = blob0 / s and var = blob1 / s, and s == 0 means both are 0 (not a division by zero).
* In TRAIN every forward updates s ← λ·s + 1, blob0 ← mean + λ·blob0 and
  blob1 ← m/(m−1)·var + λ·blob1 (λ = moving_average_fraction, m = values per channel): the
  normalisation uses the biased batch variance, the running sum the unbiased one.
* The backward in TRAIN differentiates through the batch statistics; with global statistics it is
  dy / sqrt(var + eps).
* With the batch split across devices (cct.parallel) the statistics are the whole batch's: each
  share's per-channel mean and centred sum of squares are combined exactly over the shares (two
  synchronisations forward), and the backward's two per-channel sums likewise (one).
* Caffe's LayerSetUp takes 1 channel for a 1-axis bottom but then fails in Reshape; cct accepts it.

What cct keeps for the backward is per channel where it can be (mean and std), not Caffe's x_norm
and temp blobs of the input's size: the net tells the layer (``recompute``) when its bottom stays
intact until the backward, which then recomputes x_norm from it exactly as the forward rounded it;
otherwise the layer keeps x_norm (a later in-place layer overwrites its top). A Scale running in
place on the top right after it is fused at net build (cct/layers/fusion.py): one pass
for the statistics and one writing Scale's output, and backward likewise, with Caffe's numbers.
"""
import numpy as np

from cct.layers.base import Layer, register
from cct.proto import caffe_pb2


@register('BatchNorm')
class BatchNormLayer(Layer):
    num_bottom = 1
    num_top = 1
    primitives = ('batch_norm_statistics', 'batch_norm_forward', 'batch_norm_backward',
                  'channel_op', 'axpby', 'copy', 'to_host', 'from_host', 'scratch', 'empty')

    def setup(self, bottom, top):
        param = self.param.batch_norm_param
        dtype = self.dtype.type
        self.moving_average_fraction = dtype(param.moving_average_fraction)
        self.use_global_stats = self.phase == caffe_pb2.TEST
        if param.HasField('use_global_stats'):
            self.use_global_stats = param.use_global_stats
        if bottom[0].ndim < 1:
            self.fail('needs a bottom with at least 1 axis, got a scalar')
        self.channels = 1 if bottom[0].ndim == 1 else bottom[0].shape[1]
        self.eps = dtype(param.eps)
        self.make_param_blobs([((self.channels,), None), ((self.channels,), None), ((1,), None)])
        # Caffe masks the statistics from the solver by giving them lr_mult 0 itself.
        for i in range(len(self.blobs)):
            if len(self.param.param) == i:
                self.param.param.add(lr_mult=0)
            elif self.param.param[i].lr_mult != 0:
                self.fail('Cannot configure batch normalization statistics as layer parameters '
                          '(param %d has lr_mult %g; it must be 0)'
                          % (i, self.param.param[i].lr_mult))
        self.std = np.zeros(self.channels, self.dtype)
        self.device_mean = self.device.zeros((self.channels,), self.dtype)
        self.device_variance = self.device.zeros((self.channels,), self.dtype)
        self.device_std = self.device.from_host(self.std)
        # Set by the net (cct.layers.fusion): the bottom stays intact until backward, so x_norm is
        # recomputed from it; whether any backward will need x_norm; the Scale fused in, if any.
        self.recompute = False
        self.backward_runs = True   # False in a net that never runs this layer's backward
        self.scale_layer = None
        self.x_norm = None          # x_norm, kept when it cannot be recomputed (allocated lazily)
        self.source = None          # the bottom blob the last forward read (for a recompute)
        self.fused = False          # whether the last forward ran the Scale too
        self._recomputed_last = True

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) >= 2 and shape[1] != self.channels:
            self.fail('bottom has %d channels, the layer was set up for %d'
                      % (shape[1], self.channels))
        top[0].reshape(shape)
        self.num = shape[0]
        self.inner = bottom[0].count // max(self.num * self.channels, 1)

    def _statistics(self, x):
        """The mean and std per channel (device arrays) for this forward, updating the running
        sums in TRAIN."""
        device = self.device
        dtype = self.dtype.type
        if self.use_global_stats:
            normaliser = self.blobs[2].data[0]
            factor = dtype(0) if normaliser == 0 else dtype(1) / normaliser
            device.from_host(factor * self.blobs[0].data, self.device_mean)
            variance = factor * self.blobs[1].data
        else:
            device.batch_norm_statistics(x, self.device_mean, self.device_variance, self.inner)
            # The per-channel statistics are a few values: they are finished on the host.
            mean = device.to_host(self.device_mean)
            variance = device.to_host(self.device_variance)
            count = self.batch_count = x.size // self.channels
            if self.share_group is not None:
                mean, variance, count = self._whole_batch_statistics(mean, variance, count)
            fraction = self.moving_average_fraction
            self.blobs[2].data[0] = self.blobs[2].data[0] * fraction + 1
            self.blobs[0].data[...] *= fraction
            self.blobs[0].data[...] += mean
            # The running variance is the unbiased estimate, m/(m-1) times the batch variance.
            correction = dtype(count) / dtype(count - 1) if count > 1 else dtype(1)
            self.blobs[1].data[...] *= fraction
            self.blobs[1].data[...] += correction * variance
        np.add(variance, self.eps, out=self.std)
        np.sqrt(self.std, out=self.std)
        device.from_host(self.std, self.device_std)

    def _whole_batch_statistics(self, mean, variance, count):
        """The whole split batch's per-channel mean and biased variance from this share's: the
        shares' centred sums of squares combined exactly (Chan et al.), in float64."""
        n = np.float64(count)
        first = self.whole_batch_sum(np.concatenate([[n], n * mean, n * variance]))
        total = first[0]
        whole_mean = first[1:1 + self.channels] / total
        spread = self.whole_batch_sum(n * (mean - whole_mean) ** 2)
        whole_variance = (first[1 + self.channels:] + spread) / total
        self.batch_count = int(total)
        self.device.from_host(whole_mean.astype(self.dtype), self.device_mean)
        return whole_mean.astype(self.dtype), whole_variance.astype(self.dtype), int(total)

    def _whole_batch_gradient(self, dz, sums, scale, dx):
        """dx from the whole split batch's sums of dy and dy*xn (one synchronisation); ``sums``
        holds this share's from batch_norm_backward, which wrote no dx."""
        device, channels, inner = self.device, self.channels, self.inner
        both = self.whole_batch_sum(device.to_host(sums)[2 * channels:].astype(self.dtype))
        xn = self.normalised()
        if scale is not None:
            dy = device.scratch('batch_norm_split_dy', dz.shape, self.dtype)
            device.channel_op('mul', dz, scale, dy, inner)
        else:
            dy = dz
        work = device.scratch('batch_norm_split', dz.shape, self.dtype)
        device.channel_op('mul', xn, device.from_host(both[channels:]), work, inner)
        device.channel_op('add', work, device.from_host(both[:channels]), work, inner)
        device.scale(work, -1.0 / self.batch_count, work)
        device.axpby(1.0, dy, 1.0, work)
        device.copy(work, dx)
        device.channel_op('div', dx, self.device_std, dx, inner)

    def _keep(self, bottom, top, needed):
        """Where the forward writes x_norm for the backward: None when it is recomputed from the
        bottom (or not needed), else the layer's own buffer."""
        self.source = bottom[0]
        if not needed or (self.recompute and top[0] is not bottom[0]):
            return None
        if self.x_norm is None or self.x_norm.shape != bottom[0].shape:
            self.x_norm = None
            self.x_norm = self.device.empty(bottom[0].shape, self.dtype)
        return self.x_norm

    def normalised(self):
        """x_norm of the last forward as a device array: kept, or recomputed from the bottom (a
        fused Scale's own backward reads it when the pair's backward runs unfused)."""
        source, recompute = self._source()
        if not recompute:
            return source
        out = self.device.scratch('batch_norm_normalised', source.shape, self.dtype)
        self.device.batch_norm_forward(source, self.device_mean, self.device_std, out, self.inner)
        return out

    def forward(self, bottom, top):
        self._statistics(bottom[0].dev_data)
        # With global statistics BatchNorm's own backward needs no x_norm.
        keep = self._keep(bottom, top, self.backward_runs and not self.use_global_stats)
        self._recomputed_last = keep is None
        self.device.batch_norm_forward(bottom[0].dev_data, self.device_mean, self.device_std,
                                       top[0].dev_data, self.inner, normalised=keep)
        self.fused = False

    def forward_fused(self, bottom, top, scale_top):
        """This layer and its fused Scale (in place on ``top``) forward: one statistics pass, one
        pass writing the Scale's output into ``scale_top``."""
        scale = self.scale_layer
        self._statistics(bottom[0].dev_data)
        keep = self._keep(bottom, top, self.backward_runs)
        self._recomputed_last = keep is None
        bias = scale.blobs[-1].dev_data.reshape(-1) if scale.bias_term else None
        self.device.batch_norm_forward(bottom[0].dev_data, self.device_mean, self.device_std,
                                       scale_top[0].dev_data, self.inner,
                                       scale=scale.blobs[0].dev_data.reshape(-1), bias=bias,
                                       normalised=keep)
        self.fused = True

    def _source(self):
        """What the backward reads x_norm from: (the bottom data, True) or (x_norm, False)."""
        if self._recomputed_last:
            return self.source.dev_data, True
        return self.x_norm, False

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        device = self.device
        dy, dx = top[0].dev_diff, bottom[0].dev_diff
        if self.use_global_stats:
            device.channel_op('div', dy, self.device_std, dx, self.inner)
            return
        source, recompute = self._source()
        sums = device.scratch('batch_norm_sums', (4 * self.channels,), self.dtype)
        split = self.share_group is not None
        device.batch_norm_backward(dy, source, self.device_mean, self.device_std, sums,
                                   self.inner, recompute=recompute,
                                   bottom_diff=None if split else dx)
        if split:
            self._whole_batch_gradient(dy, sums, None, dx)

    def backward_fused(self, top, propagate_down, bottom, scale_top, scale_propagate_down):
        """The fused Scale's backward and then this layer's: dz is ``scale_top``'s diff (which is
        ``top``'s, in place); the Scale's param gradients as its backward gives them, dy left in the
        top's diff where the Scale propagates down and BatchNorm's gradient does not overwrite it,
        and dx when ``propagate_down[0]``."""
        device = self.device
        scale = self.scale_layer
        dz = scale_top[0].dev_diff
        dx = bottom[0].dev_diff if propagate_down[0] else None
        in_place = bottom[0] is top[0]
        scaled_diff = dz if scale_propagate_down[0] and not (dx is not None and in_place) \
            else None
        source, recompute = self._source()
        sums = device.scratch('batch_norm_sums', (4 * self.channels,), self.dtype)
        split = self.share_group is not None and not self.use_global_stats and dx is not None
        device.batch_norm_backward(dz, source, self.device_mean, self.device_std, sums,
                                   self.inner, recompute=recompute,
                                   scale=scale.blobs[0].dev_data.reshape(-1),
                                   scaled_diff=scaled_diff, bottom_diff=None if split else dx,
                                   global_stats=self.use_global_stats)
        if split:
            # dz already holds dy where the primitive wrote scaled_diff into it.
            self._whole_batch_gradient(dz, sums, None if scaled_diff is not None
                                       else scale.blobs[0].dev_data.reshape(-1), dx)
        channels = self.channels
        if scale.bias_term and scale.param_propagate_down[-1]:
            device.axpby(1.0, sums[:channels], 1.0, scale.blobs[-1].dev_diff.reshape(-1))
        if scale.param_propagate_down[0]:
            diff = scale.blobs[0].dev_diff.reshape(-1)
            if scale.overwrites_diff():
                device.copy(sums[channels:2 * channels], diff)
            else:
                device.axpby(1.0, sums[channels:2 * channels], 1.0, diff)
