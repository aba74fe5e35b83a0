"""Image files as Caffe reads and writes them (util/io.cpp): OpenCV decoding in BGR order,
cv::resize with bilinear interpolation, cv::imencode, and the ``path label`` list files of
convert_imageset and ImageData.

OpenCV (``opencv-python-headless``) is the library Caffe itself uses, so decoded pixels, colour
conversion and resizing match Caffe's. Images come back as OpenCV does: H x W x C (BGR) uint8
arrays, H x W for grey.
"""
import os

import numpy as np

from cct.errors import DataError, install_hint

_cv2 = None


def cv2():
    """The OpenCV module, imported on first use."""
    global _cv2
    if _cv2 is None:
        try:
            import cv2 as module
        except ImportError:
            raise DataError('reading and writing images needs OpenCV: '
                            + install_hint('data', 'opencv-python-headless>=4.10')) from None
        _cv2 = module
    return _cv2


def read_image(path, height=0, width=0, is_color=True):
    """Caffe's ReadImageToCVMat: the image at ``path`` in colour (BGR) or grey, resized to
    ``height`` x ``width`` when both are positive. Returns None when the file cannot be read."""
    cv = cv2()
    if not os.path.isfile(path):
        return None  # before OpenCV, which would print a warning of its own
    image = cv.imread(path, cv.IMREAD_COLOR if is_color else cv.IMREAD_GRAYSCALE)
    if image is None:
        return None
    if height > 0 and width > 0:
        image = cv.resize(image, (width, height))
    return image


def decode_image(data, color=None):
    """Decode encoded image bytes (Caffe's DecodeDatumToCVMat / ...Native).

    Args:
        data: the file's bytes.
        color: True forces 3-channel BGR, False forces grey, None keeps the file's own channels
            (and depth) as ``cv::IMREAD_UNCHANGED`` does.

    Returns:
        the pixel array, or None when the bytes are not a decodable image.
    """
    cv = cv2()
    flags = cv.IMREAD_UNCHANGED if color is None else \
        (cv.IMREAD_COLOR if color else cv.IMREAD_GRAYSCALE)
    return cv.imdecode(np.frombuffer(data, np.uint8), flags)


def encode_image(image, extension):
    """``cv::imencode("." + extension, image)`` as bytes."""
    ok, buffer = cv2().imencode('.' + extension, image)
    if not ok:
        raise DataError('OpenCV cannot encode an image as %r' % extension)
    return buffer.tobytes()


def to_chw(image):
    """An OpenCV image (H x W or H x W x C) as a C x H x W view (no copy)."""
    return image[np.newaxis] if image.ndim == 2 else image.transpose(2, 0, 1)


def matches_extension(filename, encoding):
    """Caffe's matchExt: the file's extension equals ``encoding`` (case-insensitive; jpeg ~ jpg)."""
    dot = filename.rfind('.')
    extension = (filename[dot + 1:] if dot >= 0 else filename).lower()
    encoding = encoding.lower()
    return extension == encoding or (encoding == 'jpg' and extension == 'jpeg')


def _atoi(text):
    """C's atoi: optional whitespace and sign, then the leading digits; 0 when there are none."""
    text = text.lstrip(' \t\n\v\f\r')
    end = 1 if text[:1] in ('-', '+') else 0
    while end < len(text) and text[end].isdigit() and text[end].isascii():
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return 0


def read_image_list(path):
    """The ``(relative path, label)`` lines of a Caffe image list file.

    Each line splits at its *last* space, so paths may hold spaces; the label is read as C's atoi
    reads it, as convert_imageset and ImageData do.
    """
    try:
        with open(path, 'rb') as f:
            text = f.read().decode('utf-8', errors='surrogateescape')
    except FileNotFoundError:
        raise DataError('image list file not found: %s' % path) from None
    except OSError as e:
        raise DataError('cannot read image list file %s: %s' % (path, e.strerror)) from None
    lines = text.split('\n')
    if lines and lines[-1] == '':
        lines.pop()  # std::getline yields no empty line after a final newline
    entries = []
    for line in lines:
        cut = line.rfind(' ')
        # With no space, Caffe's substr(npos + 1) is the whole line: path and label both read it.
        entries.append((line[:cut] if cut >= 0 else line, _atoi(line[cut + 1:])))
    return entries
