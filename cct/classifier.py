"""Image classification with a trained net (pycaffe's python/caffe/classifier.py).

``Classifier`` is a TEST-phase Net whose first input gets a Transformer with transpose (2, 0, 1)
plus the given mean/scales/channel swap. ``predict`` resizes every H x W x K image to
``image_dims`` (default: the net's input size), then either takes the 10 oversampled crops and
averages their predictions, or takes the centre crop, and returns the first output, N x classes.
"""
import numpy as np

from cct import io as cct_io
from cct.net import Net
from cct.proto import caffe_pb2


class Classifier(Net):
    """A Net for classifying images.

    Args:
        model_file: deploy prototxt (its first input is the image blob).
        pretrained_file: .caffemodel with the weights.
        image_dims: (height, width) images are resized to before cropping; default the input's.
        mean: mean for ``Transformer.set_mean`` (per channel or K x H x W).
        input_scale: scale applied after the mean subtraction.
        raw_scale: scale applied before the mean subtraction (255 for [0, 255] models).
        channel_swap: channel order, e.g. (2, 1, 0) for RGB -> BGR.
    """

    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None):
        super().__init__(model_file, pretrained_file, caffe_pb2.TEST)
        in_ = self.inputs[0]
        self.transformer = cct_io.Transformer({in_: self.blobs[in_].data.shape})
        self.transformer.set_transpose(in_, (2, 0, 1))
        if mean is not None:
            self.transformer.set_mean(in_, mean)
        if input_scale is not None:
            self.transformer.set_input_scale(in_, input_scale)
        if raw_scale is not None:
            self.transformer.set_raw_scale(in_, raw_scale)
        if channel_swap is not None:
            self.transformer.set_channel_swap(in_, channel_swap)
        self.crop_dims = np.array(self.blobs[in_].data.shape[2:])
        if not image_dims:
            image_dims = self.crop_dims
        self.image_dims = image_dims

    def predict(self, inputs, oversample=True):
        """Classify images.

        Args:
            inputs: iterable of H x W x K images (e.g. from ``cct.io.load_image``).
            oversample: average over 10 crops (corners, centre and their mirrors) when True;
                use the centre crop only when False.

        Returns:
            N x C array of class scores (the net's first output).
        """
        inputs = list(inputs)
        input_ = np.zeros((len(inputs), self.image_dims[0], self.image_dims[1],
                           inputs[0].shape[2]), dtype=np.float32)
        for ix, in_ in enumerate(inputs):
            input_[ix] = cct_io.resize_image(in_, self.image_dims)
        if oversample:
            input_ = cct_io.oversample(input_, self.crop_dims)
        else:
            center = np.array(self.image_dims) / 2.0
            crop = np.tile(center, (1, 2))[0] + np.concatenate([-self.crop_dims / 2.0,
                                                                 self.crop_dims / 2.0])
            crop = crop.astype(int)
            input_ = input_[:, crop[0]:crop[2], crop[1]:crop[3], :]
        caffe_in = np.zeros(np.array(input_.shape)[[0, 3, 1, 2]], dtype=np.float32)
        for ix, in_ in enumerate(input_):
            caffe_in[ix] = self.transformer.preprocess(self.inputs[0], in_)
        out = self.forward_all(**{self.inputs[0]: caffe_in})
        predictions = out[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions
