"""Windowed detection with a trained net, R-CNN style (pycaffe's python/caffe/detector.py).

``detect_windows`` crops each window (ymin, xmin, ymax, xmax) of each image, warps it to the net's
input size, classifies all crops with ``forward_all`` and returns one dict per window. With
``context_pad`` p, a window is first grown by the factor crop / (crop - 2p) around its centre (R-CNN's
context padding); the part outside the image is filled with the mean, in unprocessed input space.
"""
import os

import numpy as np

from cct import io as cct_io
from cct.net import Net
from cct.proto import caffe_pb2


class Detector(Net):
    """A Net for classifying windows of images.

    Args:
        model_file, pretrained_file: deploy prototxt and weights.
        mean, input_scale, raw_scale, channel_swap: preprocessing, as for ``Classifier``.
        context_pad: pixels of context added around each window at the net's input scale.
    """

    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None,
                 channel_swap=None, context_pad=None):
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
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """Classify windows.

        Args:
            images_windows: iterable of (image filename, [window, ...]) with windows as
                (ymin, xmin, ymax, xmax) arrays.

        Returns:
            list of {'window', 'prediction', 'filename'} dicts, in input order.
        """
        images_windows = list(images_windows)
        window_inputs = []
        for image_fname, windows in images_windows:
            image = cct_io.load_image(image_fname).astype(np.float32)
            for window in windows:
                window_inputs.append(self.crop(image, window))
        in_ = self.inputs[0]
        caffe_in = np.zeros((len(window_inputs), window_inputs[0].shape[2])
                            + self.blobs[in_].data.shape[2:], dtype=np.float32)
        for ix, window_in in enumerate(window_inputs):
            caffe_in[ix] = self.transformer.preprocess(in_, window_in)
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        detections = []
        ix = 0
        for image_fname, windows in images_windows:
            for window in windows:
                detections.append({'window': window, 'prediction': predictions[ix],
                                   'filename': image_fname})
                ix += 1
        return detections

    def detect_selective_search(self, image_fnames):
        """Detect on Selective Search proposals; needs the external
        ``selective_search_ijcv_with_python`` module (and MATLAB), as pycaffe does."""
        try:
            import selective_search_ijcv_with_python as selective_search
        except ImportError:
            raise ImportError('Detector.detect_selective_search needs the external '
                              'selective_search_ijcv_with_python module (github.com/sergeyk/'
                              'selective_search_ijcv_with_python) on PYTHONPATH; or compute '
                              'windows yourself and call detect_windows') from None
        image_fnames = [os.path.abspath(f) for f in image_fnames]
        windows_list = selective_search.get_windows(image_fnames, cmd='selective_search_rcnn')
        return self.detect_windows(zip(image_fnames, windows_list))

    def crop(self, im, window):
        """The H x W x K crop of ``window`` (ymin, xmin, ymax, xmax), with context padding if
        configured (then already warped to the input size, mean-filled outside the image)."""
        window = np.asarray(window)
        crop = im[int(window[0]):int(window[2]), int(window[1]):int(window[3])]
        if not self.context_pad:
            return crop
        box = window.astype(np.float64)
        crop_size = self.blobs[self.inputs[0]].width  # assumes a square input, as pycaffe does
        scale = crop_size / (1. * crop_size - self.context_pad * 2)
        half_h = (box[2] - box[0] + 1) / 2.
        half_w = (box[3] - box[1] + 1) / 2.
        center = (box[0] + half_h, box[1] + half_w)
        scaled_dims = scale * np.array((-half_h, -half_w, half_h, half_w))
        box = np.round(np.tile(center, 2) + scaled_dims)
        full_h = box[2] - box[0] + 1
        full_w = box[3] - box[1] + 1
        scale_h = crop_size / full_h
        scale_w = crop_size / full_w
        pad_y = int(round(max(0, -box[0]) * scale_h))
        pad_x = int(round(max(0, -box[1]) * scale_w))
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0., [im_h, im_w, im_h, im_w])
        clip_h = box[2] - box[0] + 1
        clip_w = box[3] - box[1] + 1
        if clip_h <= 0 or clip_w <= 0:
            raise ValueError('window %s lies outside the %dx%d image' % (window, im_h, im_w))
        crop_h = int(round(clip_h * scale_h))
        crop_w = int(round(clip_w * scale_w))
        crop_h = min(crop_h, crop_size - pad_y)
        crop_w = min(crop_w, crop_size - pad_x)
        box = box.astype(int)
        context_crop = cct_io.resize_image(im[box[0]:box[2], box[1]:box[3]], (crop_h, crop_w))
        crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        crop[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context_crop
        return crop

    def configure_crop(self, context_pad):
        """Set the crop dimensions (H x W x K) and, for context padding, the mean in unprocessed
        input space used to fill outside the image."""
        in_ = self.inputs[0]
        inverse_transpose = np.argsort(self.transformer.transpose[in_])
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[inverse_transpose]
        self.context_pad = context_pad
        if not self.context_pad:
            return
        channel_order = self.transformer.channel_swap.get(in_)
        raw_scale = self.transformer.raw_scale.get(in_)
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = mean.copy().transpose(inverse_transpose)
        if channel_order is not None:
            crop_mean = crop_mean[:, :, np.argsort(channel_order)]
        if raw_scale is not None:
            crop_mean /= raw_scale
        self.crop_mean = crop_mean
