"""pycaffe's image helpers (python/caffe/io.py): ``load_image``, ``resize_image``, ``oversample``.

pycaffe reads images with scikit-image and resizes with ``skimage.transform.resize``; cct decodes with
Pillow and reproduces scikit-image's resize (>= 0.19) with scipy.ndimage, so no scikit-image is
needed. The rules that are easy to get wrong:

* ``load_image`` returns float32 in [0, 1] (integer images divided by their dtype's maximum), H x W x 3
  RGB (grey tiled to 3 channels) or H x W x 1 when ``color=False``; alpha is dropped. ``color=False``
  on a colour image converts it with scikit-image's luma weights (0.2125, 0.7154, 0.0721), after
  blending any alpha onto white.
* ``resize_image`` rescales 1- and 3-channel images to [0, 1] first (scikit-image only accepts that
  range), resizes with a pixel-area-aligned grid, Gaussian anti-aliasing when shrinking, mirror
  edges and clipping to the input range, then maps back. Other channel counts go through
  ``scipy.ndimage.zoom`` directly, as pycaffe does.
* ``oversample`` yields, per image, the 4 corner crops and the centre crop (its corners truncated to
  integers), then the same 5 mirrored left-right.
"""
import numpy as np

from cct.errors import MissingPackageError, install_hint

# scikit-image's rgb2gray weights (ITU-R BT.709 luma), which pycaffe's grey loading uses.
_GRAY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])


def _import_image_libraries():
    try:
        from PIL import Image
        from scipy import ndimage
    except ImportError as e:
        raise MissingPackageError('cct.io image helpers need Pillow and scipy (missing: %s): %s'
                                  % (e.name, install_hint('pycaffe', 'scipy>=1.8', 'pillow>=9'))) \
            from None
    return Image, ndimage


def _pil_to_array(image):
    """The pixel array scikit-image's imread would give for a Pillow image (dtype kept)."""
    mode = image.mode
    if mode == 'P':
        image = image.convert('RGBA' if 'transparency' in image.info else 'RGB')
    elif mode in ('CMYK', 'YCbCr', 'LAB', 'HSV'):
        image = image.convert('RGB')
    elif mode.startswith('I;16'):
        return np.asarray(image, dtype=np.uint16)
    return np.asarray(image)


def _img_as_float(pixels):
    """scikit-image's img_as_float: integers divide by their dtype's maximum, floats stay."""
    if pixels.dtype == bool:
        return pixels.astype(np.float64)
    if np.issubdtype(pixels.dtype, np.integer):
        info = np.iinfo(pixels.dtype)
        if info.min < 0:  # signed integers map to [-1, 1]
            return np.maximum(pixels / float(info.max), -1.0)
        return pixels / float(info.max)
    return pixels.astype(np.float64, copy=False)


def load_image(filename, color=True):
    """Load an image as float32 in [0, 1], converting from grey or dropping alpha as needed.

    Args:
        filename: path of any image format Pillow reads.
        color: True (default) gives H x W x 3 RGB; False gives H x W x 1 intensity.

    Returns:
        ndarray of float32, H x W x 3 or H x W x 1.
    """
    Image, _ = _import_image_libraries()
    with Image.open(filename) as opened:
        pixels = _pil_to_array(opened)
    img = _img_as_float(pixels)
    if not color and img.ndim == 3 and img.shape[2] in (3, 4):
        if img.shape[2] == 4:
            alpha = img[:, :, 3:]
            img = img[:, :, :3] * alpha + (1.0 - alpha)
        img = img @ _GRAY_WEIGHTS
    img = img.astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return img


def _skimage_resize(image, out_hw, order):
    """``skimage.transform.resize(image, out_hw, order)`` with its defaults (mode='reflect',
    anti-aliasing when shrinking, clip=True) for an H x W x K float image."""
    _, ndimage = _import_image_libraries()
    out_shape = (int(out_hw[0]), int(out_hw[1]), image.shape[2])
    factors = np.divide(image.shape, out_shape)
    bounds = image.min(), image.max()
    filtered = image
    if any(o < i for o, i in zip(out_shape, image.shape)):
        # skimage's mode 'reflect' (edge not repeated) is ndimage's 'mirror'.
        filtered = ndimage.gaussian_filter(image, np.maximum(0, (factors - 1) / 2), mode='mirror')
    out = ndimage.zoom(filtered, [1 / f for f in factors], order=order, mode='mirror',
                       grid_mode=True)
    return np.clip(out, bounds[0], bounds[1], out=out)


def resize_image(im, new_dims, interp_order=1):
    """Resize an H x W x K image to ``new_dims`` = (height, width) with interpolation.

    Args:
        im: H x W x K ndarray.
        new_dims: (height, width) of the result.
        interp_order: spline order (1 = bilinear, the default; 0 = nearest).

    Returns:
        float32 ndarray of shape (height, width, K).
    """
    new_dims = tuple(int(d) for d in new_dims)
    if im.shape[-1] in (1, 3):
        im_min, im_max = im.min(), im.max()
        if im_max <= im_min:
            # A constant image: avoid dividing by zero.
            return np.full((new_dims[0], new_dims[1], im.shape[-1]), im_min, dtype=np.float32)
        im_std = (im - im_min) / (im_max - im_min)
        resized = _skimage_resize(im_std, new_dims, interp_order) * (im_max - im_min) + im_min
    else:
        _, ndimage = _import_image_libraries()
        scale = tuple(np.array(new_dims) / np.array(im.shape[:2]))
        resized = ndimage.zoom(im, scale + (1,), order=interp_order)
    return resized.astype(np.float32)


def oversample(images, crop_dims):
    """Crop each image at its 4 corners and centre, plus the mirrored versions of those 5.

    Args:
        images: sequence (or N x H x W x K array) of H x W x K images, all of one size.
        crop_dims: (height, width) of the crops.

    Returns:
        float32 ndarray of shape (10 * N, height, width, K).
    """
    im_shape = np.array(images[0].shape)
    crop_dims = np.array(crop_dims)
    im_center = im_shape[:2] / 2.0
    h_indices = (0, im_shape[0] - crop_dims[0])
    w_indices = (0, im_shape[1] - crop_dims[1])
    crops_ix = np.empty((5, 4), dtype=int)
    corner = 0
    for i in h_indices:
        for j in w_indices:
            crops_ix[corner] = (i, j, i + crop_dims[0], j + crop_dims[1])
            corner += 1
    # Assigning the float centre box to an int array truncates, as pycaffe's does.
    crops_ix[4] = np.tile(im_center, (1, 2)) + np.concatenate([-crop_dims / 2.0,
                                                                crop_dims / 2.0])
    crops_ix = np.tile(crops_ix, (2, 1))
    crops = np.empty((10 * len(images), crop_dims[0], crop_dims[1], im_shape[-1]),
                     dtype=np.float32)
    ix = 0
    for im in images:
        for crop in crops_ix:
            crops[ix] = im[crop[0]:crop[2], crop[1]:crop[3], :]
            ix += 1
        crops[ix - 5:ix] = crops[ix - 5:ix, :, ::-1, :]
    return crops
