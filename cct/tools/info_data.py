"""How ``cct info`` describes a net whose data is absent: the top shapes its data layers declare,
and which blobs (and the layers that need them) stay unknown.

Describing a net must not need its data. A Data, ImageData or HDF5Data layer whose files are all
present is built as ``cct test`` builds it; one whose source, mean_file or first image is missing
gets the shapes its parameters declare, and what only the data could tell is reported as unknown:

* the batch is ``batch_size``; a label top is (batch,);
* height and width are ``crop_size`` when it is set, else ImageData's ``new_height`` x
  ``new_width``, else the mean_file's (which must match the image), when it is there to read;
* channels are the mean_file's, or the count of ``mean_value``s when there are several (Caffe
  checks either against the data), or what ``force_color`` / ``force_gray`` decode encoded records
  to (raw records keep their own channels; Caffe logs an error for each), or for ImageData its
  ``is_color`` (3 or 1);
* HDF5Data's shapes are the files' datasets': unknown without them.
"""
import os

from cct.data.images import read_image_list
from cct.data.transformer import read_mean_file
from cct.errors import DataError
from cct.netgraph import filter_net
from cct.proto import caffe_pb2

DATA_TYPES = ('Data', 'ImageData', 'HDF5Data')


def _first_line(path):
    try:
        with open(path, errors='replace') as f:
            return f.readline().strip()
    except OSError:
        return ''


def missing_files(layer):
    """The files ``layer`` would read while the net is built that do not exist (none for layers
    that read no files)."""
    if layer.type not in DATA_TYPES:
        return []
    missing = []
    if layer.type == 'HDF5Data':
        source = layer.hdf5_data_param.source
        first = _first_line(source) if os.path.isfile(source) else ''
        return [path for path in (source, first) if not path or not os.path.isfile(path)][:1]
    if layer.transform_param.HasField('mean_file') and \
            not os.path.isfile(layer.transform_param.mean_file):
        missing.append(layer.transform_param.mean_file)
    if layer.type == 'Data':
        if not os.path.exists(layer.data_param.source):
            missing.append(layer.data_param.source)
    else:
        param = layer.image_data_param
        if not os.path.isfile(param.source):
            missing.append(param.source)
        else:
            entries = read_image_list(param.source)
            if entries and not os.path.isfile(param.root_folder + entries[0][0]):
                missing.append(param.root_folder + entries[0][0])
    return missing


def _fail(layer, message):
    raise DataError("Layer '%s' (type %s): %s" % (layer.name, layer.type, message))


def declared_shapes(layer):
    """Each top's shape as ``layer``'s parameters declare it: a tuple with None for the sizes only
    the data knows; and the reason those are unknown (None when every size is known)."""
    if layer.type == 'HDF5Data':
        return [None] * len(layer.top), 'the top shapes are those of the datasets in the files ' \
            'listed in %s' % layer.hdf5_data_param.source
    transform = layer.transform_param
    image_data = layer.type == 'ImageData'
    batch = layer.image_data_param.batch_size if image_data else layer.data_param.batch_size
    if batch <= 0:
        _fail(layer, 'Positive batch size required (batch_size: %d)' % batch)
    mean = None
    if transform.HasField('mean_file') and os.path.isfile(transform.mean_file):
        mean = read_mean_file(transform.mean_file).shape
    channels = mean[0] if mean else len(transform.mean_value) if len(transform.mean_value) > 1 \
        else 3 if transform.force_color else 1 if transform.force_gray else None
    size = (transform.crop_size,) * 2 if transform.crop_size else None
    if image_data:
        param = layer.image_data_param
        if (param.new_height == 0) != (param.new_width == 0):
            _fail(layer, 'Current implementation requires new_height and new_width to be set at '
                         'the same time.')
        channels = 3 if param.is_color else 1
        if size is None and param.new_height:
            size = (param.new_height, param.new_width)
    if size is None and mean:
        size = mean[1:]
    unknown = [what for what, value in (('channels', channels), ('height', size), ('width', size))
               if value is None]
    shapes = [(batch, channels) + (size or (None, None))] + [(batch,)] * (len(layer.top) - 1)
    if not unknown:
        return shapes, None
    what = ', '.join(unknown[:-1]) + ' and ' + unknown[-1] if len(unknown) > 1 else unknown[0]
    if image_data:
        return shapes, 'the %s come from the images listed in %s' % (
            what, layer.image_data_param.source)
    return shapes, 'the %s come from the records of %s' % (what, layer.data_param.source)


def shape_text(shape):
    return '?' if shape is None else 'x'.join('?' if d is None else str(d) for d in shape)


class Plan:
    """What of a net can be built without its absent data.

    Attributes:
        filtered: the net's layers for its state (before Split insertion).
        param: the NetParameter to build: data layers with absent files turned into Input layers
            of the tops whose shapes are declared, and every layer that needs an unknown blob left
            out.
        described: {layer index in ``filtered``: declared top shapes} for the data layers turned
            into Inputs, or None for a layer left out.
        unknown: one line per data layer whose tops are not all known, saying why.
    """

    def __init__(self, net_param):
        self.filtered = filter_net(net_param)
        self.param = caffe_pb2.NetParameter()
        self.param.CopyFrom(self.filtered)
        del self.param.layer[:]
        self.described, self.unknown = {}, []
        unknown_blobs = set()
        for index, layer in enumerate(self.filtered.layer):
            if any(name in unknown_blobs for name in layer.bottom):
                self.described[index] = None
                unknown_blobs.update(layer.top)
                continue
            missing = missing_files(layer)
            if not missing:
                self.param.layer.add().CopyFrom(layer)
                continue
            shapes, reason = declared_shapes(layer)
            self.described[index] = shapes
            known = [(name, shape) for name, shape in zip(layer.top, shapes)
                     if shape is not None and None not in shape]
            unknown_blobs.update(name for name in layer.top if name not in dict(known))
            if reason:
                self.unknown.append("'%s' (%s): %s (absent: %s)"
                                    % (layer.name, layer.type, reason, ', '.join(missing)))
            if known:
                replaced = self.param.layer.add(name=layer.name, type='Input',
                                                top=[name for name, _ in known])
                for _, shape in known:
                    replaced.input_param.shape.add().dim.extend(shape)
