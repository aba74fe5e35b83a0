"""Caffe's DataTransformer arithmetic for one image (data_transformer.cpp): crop window, mirror,
mean and scale in one pass over the pixels.

The output is ``(pixel - mean) * scale`` (or ``pixel * scale`` without a mean), computed in the
output's float type as Caffe computes it in Dtype: the mean is subtracted *before* scaling. A mean
image is indexed at the pixel's *uncropped* position; a mirrored image is flipped left-right after
cropping.
"""
cimport cython
from cython cimport floating

ctypedef fused pixel_t:
    unsigned char
    float

cdef enum:
    _NONE = 0
    _IMAGE = 1
    _VALUES = 2

MEAN_NONE, MEAN_IMAGE, MEAN_VALUES = _NONE, _IMAGE, _VALUES


@cython.boundscheck(False)
@cython.wraparound(False)
def transform_image(const pixel_t[:, :, :] image, floating[:, :, ::1] out, Py_ssize_t h_off,
                    Py_ssize_t w_off, bint mirror, const floating[:, :, :] mean_image,
                    const floating[:] mean_values, int mean_mode, floating scale):
    """Write the transformed crop of ``image`` (C x H x W, any strides) into ``out`` (C x h x w).

    Args:
        image: source pixels, uint8 or float32; an H x W x C OpenCV image transposed to C x H x W.
        out: destination, float32 or float64; its h x w is the crop size.
        h_off, w_off: top-left corner of the crop window in ``image``.
        mirror: flip the crop left-right.
        mean_image: C x H x W mean (used when ``mean_mode`` is MEAN_IMAGE).
        mean_values: one mean per channel (used when ``mean_mode`` is MEAN_VALUES).
        mean_mode: MEAN_NONE, MEAN_IMAGE or MEAN_VALUES.
        scale: multiplies the mean-subtracted pixel.
    """
    cdef Py_ssize_t channels = out.shape[0], height = out.shape[1], width = out.shape[2]
    cdef Py_ssize_t c, h, w, dest_w
    cdef floating pixel, mean
    if image.shape[0] != channels or h_off < 0 or w_off < 0 or \
            h_off + height > image.shape[1] or w_off + width > image.shape[2]:
        raise ValueError('crop window out of the image')
    if mean_mode == _IMAGE and (mean_image.shape[0] < channels or
                                    mean_image.shape[1] < h_off + height or
                                    mean_image.shape[2] < w_off + width):
        raise ValueError('mean image smaller than the image')
    if mean_mode == _VALUES and mean_values.shape[0] < channels:
        raise ValueError('fewer mean values than channels')
    with nogil:
        for c in range(channels):
            if mean_mode == _VALUES:
                mean = mean_values[c]
            for h in range(height):
                for w in range(width):
                    dest_w = width - 1 - w if mirror else w
                    pixel = <floating>image[c, h_off + h, w_off + w]
                    if mean_mode == _IMAGE:
                        out[c, h, dest_w] = (pixel - mean_image[c, h_off + h, w_off + w]) * scale
                    elif mean_mode == _VALUES:
                        out[c, h, dest_w] = (pixel - mean) * scale
                    else:
                        out[c, h, dest_w] = pixel * scale
