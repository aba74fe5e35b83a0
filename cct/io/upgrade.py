"""Upgrades of old Caffe files to the current schema, as Caffe's util/upgrade_proto.cpp applies them:
V0 -> V1 (padding layers folded, flat fields to typed params), data-transformation fields to
transform_param, V1 -> V2 (enum types, blobs_lr/weight_decay to ParamSpec), input fields to an Input
layer, old BatchNorm ParamSpecs, and the solver's ``solver_type`` enum to the ``type`` string.
"""
from cct.errors import ParseError
from cct.log import logger
from cct.proto import caffe_pb2

V1 = caffe_pb2.V1LayerParameter

# V1 (``layers { type: CONVOLUTION }``) enum names and the V2 type strings they became.
V1_TYPE_NAMES = {
    'ABSVAL': 'AbsVal', 'ACCURACY': 'Accuracy', 'ARGMAX': 'ArgMax', 'BNLL': 'BNLL',
    'CONCAT': 'Concat', 'CONTRASTIVE_LOSS': 'ContrastiveLoss', 'CONVOLUTION': 'Convolution',
    'DECONVOLUTION': 'Deconvolution', 'DATA': 'Data', 'DROPOUT': 'Dropout',
    'DUMMY_DATA': 'DummyData', 'EUCLIDEAN_LOSS': 'EuclideanLoss', 'ELTWISE': 'Eltwise',
    'EXP': 'Exp', 'FLATTEN': 'Flatten', 'HDF5_DATA': 'HDF5Data', 'HDF5_OUTPUT': 'HDF5Output',
    'HINGE_LOSS': 'HingeLoss', 'IM2COL': 'Im2col', 'IMAGE_DATA': 'ImageData',
    'INFOGAIN_LOSS': 'InfogainLoss', 'INNER_PRODUCT': 'InnerProduct', 'LRN': 'LRN',
    'MEMORY_DATA': 'MemoryData', 'MULTINOMIAL_LOGISTIC_LOSS': 'MultinomialLogisticLoss',
    'MVN': 'MVN', 'POOLING': 'Pooling', 'POWER': 'Power', 'RELU': 'ReLU', 'SIGMOID': 'Sigmoid',
    'SIGMOID_CROSS_ENTROPY_LOSS': 'SigmoidCrossEntropyLoss', 'SILENCE': 'Silence',
    'SOFTMAX': 'Softmax', 'SOFTMAX_LOSS': 'SoftmaxWithLoss', 'SPLIT': 'Split', 'SLICE': 'Slice',
    'TANH': 'TanH', 'WINDOW_DATA': 'WindowData', 'THRESHOLD': 'Threshold',
}

V0_TYPE_NAMES = {
    'accuracy': 'ACCURACY', 'bnll': 'BNLL', 'concat': 'CONCAT', 'conv': 'CONVOLUTION',
    'data': 'DATA', 'dropout': 'DROPOUT', 'euclidean_loss': 'EUCLIDEAN_LOSS', 'flatten': 'FLATTEN',
    'hdf5_data': 'HDF5_DATA', 'hdf5_output': 'HDF5_OUTPUT', 'im2col': 'IM2COL',
    'images': 'IMAGE_DATA', 'infogain_loss': 'INFOGAIN_LOSS', 'innerproduct': 'INNER_PRODUCT',
    'lrn': 'LRN', 'multinomial_logistic_loss': 'MULTINOMIAL_LOGISTIC_LOSS', 'pool': 'POOLING',
    'relu': 'RELU', 'sigmoid': 'SIGMOID', 'softmax': 'SOFTMAX', 'softmax_loss': 'SOFTMAX_LOSS',
    'split': 'SPLIT', 'tanh': 'TANH', 'window_data': 'WINDOW_DATA',
}

# V0 flat field -> {V0 layer type: (typed param, field)}; a None param means transform_param.
_V0_FIELDS = {
    'num_output': {'conv': ('convolution_param', 'num_output'),
                   'innerproduct': ('inner_product_param', 'num_output')},
    'biasterm': {'conv': ('convolution_param', 'bias_term'),
                 'innerproduct': ('inner_product_param', 'bias_term')},
    'weight_filler': {'conv': ('convolution_param', 'weight_filler'),
                      'innerproduct': ('inner_product_param', 'weight_filler')},
    'bias_filler': {'conv': ('convolution_param', 'bias_filler'),
                    'innerproduct': ('inner_product_param', 'bias_filler')},
    'pad': {'conv': ('convolution_param', 'pad'), 'pool': ('pooling_param', 'pad')},
    'kernelsize': {'conv': ('convolution_param', 'kernel_size'),
                   'pool': ('pooling_param', 'kernel_size')},
    'group': {'conv': ('convolution_param', 'group')},
    'stride': {'conv': ('convolution_param', 'stride'), 'pool': ('pooling_param', 'stride')},
    'pool': {'pool': ('pooling_param', 'pool')},
    'dropout_ratio': {'dropout': ('dropout_param', 'dropout_ratio')},
    'local_size': {'lrn': ('lrn_param', 'local_size')},
    'alpha': {'lrn': ('lrn_param', 'alpha')},
    'beta': {'lrn': ('lrn_param', 'beta')},
    'k': {'lrn': ('lrn_param', 'k')},
    'source': {'data': ('data_param', 'source'), 'hdf5_data': ('hdf5_data_param', 'source'),
               'images': ('image_data_param', 'source'),
               'window_data': ('window_data_param', 'source'),
               'infogain_loss': ('infogain_loss_param', 'source')},
    'batchsize': {'data': ('data_param', 'batch_size'),
                  'hdf5_data': ('hdf5_data_param', 'batch_size'),
                  'images': ('image_data_param', 'batch_size'),
                  'window_data': ('window_data_param', 'batch_size')},
    'rand_skip': {'data': ('data_param', 'rand_skip'), 'images': ('image_data_param', 'rand_skip')},
    'shuffle_images': {'images': ('image_data_param', 'shuffle')},
    'new_height': {'images': ('image_data_param', 'new_height')},
    'new_width': {'images': ('image_data_param', 'new_width')},
    'concat_dim': {'concat': ('concat_param', 'concat_dim')},
    'det_fg_threshold': {'window_data': ('window_data_param', 'fg_threshold')},
    'det_bg_threshold': {'window_data': ('window_data_param', 'bg_threshold')},
    'det_fg_fraction': {'window_data': ('window_data_param', 'fg_fraction')},
    'det_context_pad': {'window_data': ('window_data_param', 'context_pad')},
    'det_crop_mode': {'window_data': ('window_data_param', 'crop_mode')},
    'hdf5_output_param': {'hdf5_output': ('hdf5_output_param', None)},
}
_V0_TRANSFORM_FIELDS = {'scale': 'scale', 'meanfile': 'mean_file', 'cropsize': 'crop_size',
                        'mirror': 'mirror'}
_TRANSFORM_FIELDS = ('scale', 'mean_file', 'crop_size', 'mirror')


def _set_field(message, field, value):
    descriptor = message.DESCRIPTOR.fields_by_name[field]
    if descriptor.message_type is not None:
        getattr(message, field).CopyFrom(value)
    elif descriptor.is_repeated:
        getattr(message, field).append(value)
    else:
        setattr(message, field, value)


def net_needs_upgrade(net):
    """Caffe's NetNeedsUpgrade: V0 or V1 layers, input fields, or old BatchNorm ParamSpecs (the
    data-transformation upgrade only applies to V1 layers)."""
    return bool(len(net.layers) or len(net.input) or _needs_batchnorm_upgrade(net))


def solver_needs_upgrade(solver):
    """Caffe's SolverNeedsTypeUpgrade."""
    return solver.HasField('solver_type')


def _fold_v0_padding(net):
    """V0 nets wrote padding as separate ``padding`` layers; fold each into the conv/pool it feeds."""
    folded = caffe_pb2.NetParameter()
    folded.CopyFrom(net)
    del folded.layers[:]
    last_producer = {name: -1 for name in net.input}
    for i, connection in enumerate(net.layers):
        v0 = connection.layer
        if v0.type != 'padding':
            folded.layers.add().CopyFrom(connection)
        for j, blob in enumerate(connection.bottom):
            if blob not in last_producer:
                raise ParseError("Unknown blob input %s to layer '%s' (bottom index %d)"
                                 % (blob, v0.name, j))
            source_index = last_producer[blob]
            if source_index == -1 or net.layers[source_index].layer.type != 'padding':
                continue
            source = net.layers[source_index]
            if v0.type not in ('conv', 'pool') or len(connection.bottom) != 1 or \
                    len(source.bottom) != 1 or len(source.top) != 1:
                raise ParseError("V0 padding layer '%s' must feed a single-input conv or pool "
                                 "layer, not '%s' (type %s)" % (source.layer.name, v0.name, v0.type))
            target = folded.layers[len(folded.layers) - 1]
            target.layer.pad = source.layer.pad
            target.bottom[j] = source.bottom[0]
        for blob in connection.top:
            last_producer[blob] = i
    return folded


def _upgrade_v0_layer(connection):
    """One V0 layer (a V1LayerParameter holding a V0LayerParameter) to a V1 layer."""
    v0 = connection.layer
    layer = V1()
    layer.bottom.extend(connection.bottom)
    layer.top.extend(connection.top)
    compatible = True
    if v0.HasField('name'):
        layer.name = v0.name
    kind = v0.type
    if v0.HasField('type'):
        if kind not in V0_TYPE_NAMES:
            raise ParseError("Unknown V0 layer type '%s' (layer '%s')" % (kind, v0.name))
        layer.type = V1.LayerType.Value(V0_TYPE_NAMES[kind])
    layer.blobs.extend(v0.blobs)
    layer.blobs_lr.extend(v0.blobs_lr)
    layer.weight_decay.extend(v0.weight_decay)
    for field, targets in _V0_FIELDS.items():
        if not v0.HasField(field):
            continue
        if kind not in targets:
            logger.error('Unknown parameter %s for layer type %s', field, kind)
            compatible = False
            continue
        param_name, target_field = targets[kind]
        if target_field is None:
            getattr(layer, param_name).CopyFrom(getattr(v0, field))
        elif field == 'pool':
            layer.pooling_param.pool = v0.pool  # V0 and V2 PoolMethod share names and numbers
        else:
            _set_field(getattr(layer, param_name), target_field, getattr(v0, field))
    for field, target_field in _V0_TRANSFORM_FIELDS.items():
        if v0.HasField(field):
            setattr(layer.transform_param, target_field, getattr(v0, field))
    return layer, compatible


def upgrade_v0_net(net):
    """Caffe's UpgradeV0Net: returns (V1 net, fully_compatible)."""
    v0 = _fold_v0_padding(net)
    upgraded = caffe_pb2.NetParameter()
    if v0.HasField('name'):
        upgraded.name = v0.name
    compatible = True
    for connection in v0.layers:
        layer, ok = _upgrade_v0_layer(connection)
        upgraded.layers.add().CopyFrom(layer)
        compatible &= ok
    upgraded.input.extend(v0.input)
    upgraded.input_dim.extend(v0.input_dim)
    if v0.HasField('force_backward'):
        upgraded.force_backward = v0.force_backward
    return upgraded, compatible


def upgrade_data_transformation(net):
    """Move scale/mean_file/crop_size/mirror from V1 data layers' params into transform_param."""
    owners = {V1.DATA: 'data_param', V1.IMAGE_DATA: 'image_data_param',
              V1.WINDOW_DATA: 'window_data_param'}
    for layer in net.layers:
        param_name = owners.get(layer.type)
        if param_name is None:
            continue
        param = getattr(layer, param_name)
        # Caffe reaches both messages through mutable_*_param(), which marks them present: every
        # such layer comes out with a data param and a transform_param, empty or not.
        param.SetInParent()
        layer.transform_param.SetInParent()
        for field in _TRANSFORM_FIELDS:
            if param.HasField(field):
                setattr(layer.transform_param, field, getattr(param, field))
                param.ClearField(field)


def _needs_data_upgrade(net):
    owners = {V1.DATA: 'data_param', V1.IMAGE_DATA: 'image_data_param',
              V1.WINDOW_DATA: 'window_data_param'}
    return any(layer.type in owners and
               any(getattr(layer, owners[layer.type]).HasField(f) for f in _TRANSFORM_FIELDS)
               for layer in net.layers)


_V1_TYPED_PARAMS = [f.name for f in V1.DESCRIPTOR.fields
                    if f.name.endswith('_param') and f.name != 'layer']


def upgrade_v1_layer(v1):
    """Caffe's UpgradeV1LayerParameter: returns (LayerParameter, fully_compatible)."""
    layer = caffe_pb2.LayerParameter()
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField('name'):
        layer.name = v1.name
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    if v1.HasField('type'):
        enum_name = V1.LayerType.Name(v1.type)
        layer.type = '' if enum_name == 'NONE' else V1_TYPE_NAMES[enum_name]
    layer.blobs.extend(v1.blobs)

    def spec(i):
        while len(layer.param) <= i:
            layer.param.add()
        return layer.param[i]
    for i, name in enumerate(v1.param):
        spec(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        spec(i).share_mode = mode  # V1 and ParamSpec DimCheckMode share names and numbers
    for i, lr in enumerate(v1.blobs_lr):
        spec(i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        spec(i).decay_mult = decay
    layer.loss_weight.extend(v1.loss_weight)
    for name in _V1_TYPED_PARAMS:
        if v1.HasField(name):
            getattr(layer, name).CopyFrom(getattr(v1, name))
    compatible = True
    if v1.HasField('layer'):
        logger.error('Input NetParameter has V0 layer -- ignoring.')
        compatible = False
    return layer, compatible


def upgrade_v1_net(net):
    """Caffe's UpgradeV1Net (``layers`` to ``layer``); a net with both is refused."""
    if len(net.layer):
        raise ParseError("Refusing to upgrade inconsistent NetParameter input; the definition "
                         "includes both 'layer' and 'layers' fields. The current format defines "
                         "'layer' fields with string type like layer { type: 'Layer' ... } and "
                         "not layers { type: LAYER ... }. Manually switch the definition to "
                         "'layer' format to continue.")
    upgraded = caffe_pb2.NetParameter()
    upgraded.CopyFrom(net)
    upgraded.ClearField('layers')
    upgraded.ClearField('layer')
    compatible = True
    for i, v1 in enumerate(net.layers):
        layer, ok = upgrade_v1_layer(v1)
        upgraded.layer.add().CopyFrom(layer)
        if not ok:
            logger.error('Upgrade of input layer %d failed.', i)
            compatible = False
    return upgraded, compatible


def upgrade_input_fields(net):
    """``input`` + ``input_shape``/``input_dim`` become one ``Input`` layer named "input", first."""
    if len(net.input_shape) and len(net.input_shape) != len(net.input):
        raise ParseError('Exactly one input_shape must be specified per input (%d inputs, %d '
                         'input_shape)' % (len(net.input), len(net.input_shape)))
    if not len(net.input_shape) and len(net.input_dim) and \
            len(net.input_dim) != 4 * len(net.input):
        raise ParseError('Incorrect input blob dimension specifications: input_dim needs 4 values '
                         'per input (%d inputs, %d input_dim)' % (len(net.input), len(net.input_dim)))
    if len(net.input_shape) or len(net.input_dim):
        layer = caffe_pb2.LayerParameter(name='input', type='Input')
        for i, name in enumerate(net.input):
            layer.top.append(name)
            if len(net.input_shape):
                layer.input_param.shape.add().CopyFrom(net.input_shape[i])
            else:
                layer.input_param.shape.add().dim.extend(net.input_dim[4 * i:4 * i + 4])
        layers = [layer] + list(net.layer)
        del net.layer[:]
        net.layer.extend(layers)
    # Without shapes, ``input`` is a legacy caffemodel's leftover: dropping it is the upgrade.
    for field in ('input', 'input_shape', 'input_dim'):
        net.ClearField(field)


def _needs_batchnorm_upgrade(net):
    return any(layer.type == 'BatchNorm' and len(layer.param) == 3 for layer in net.layer)


def upgrade_batchnorm(net):
    """Old BatchNorm nets declared 3 ParamSpecs; their statistics must not be learned."""
    for layer in net.layer:
        if layer.type == 'BatchNorm' and len(layer.param) == 3:
            for spec in layer.param:
                spec.lr_mult = 0
                spec.decay_mult = 0


def upgrade_net(net, source='<net>'):
    """Caffe's UpgradeNetAsNeeded, in place; returns False if some field could not be carried over.

    Args:
        net: a ``caffe_pb2.NetParameter``, modified in place.
        source: the file it came from, for the log.
    """
    compatible = True
    if any(layer.HasField('layer') for layer in net.layers):
        logger.info('Attempting to upgrade input file specified using deprecated '
                    'V0LayerParameter: %s', source)
        upgraded, ok = upgrade_v0_net(net)
        net.CopyFrom(upgraded)
        compatible &= ok
        if ok:
            logger.info('Successfully upgraded file specified using deprecated V0LayerParameter')
        else:
            logger.error('Warning: had one or more problems upgrading V0NetParameter to '
                         'NetParameter (see above); continuing anyway.')
        logger.warning('Note that future Caffe releases will not support V0NetParameter; use '
                       '`cct upgrade` to upgrade this and any other net protos to the new format.')
    if _needs_data_upgrade(net):
        logger.info('Attempting to upgrade input file specified using deprecated '
                    'transformation parameters: %s', source)
        upgrade_data_transformation(net)
        logger.info('Successfully upgraded file specified using deprecated data transformation '
                    'parameters.')
        logger.warning('Note that future Caffe releases will only support transform_param '
                       'messages for transformation fields.')
    if len(net.layers):
        logger.info('Attempting to upgrade input file specified using deprecated '
                    'V1LayerParameter: %s', source)
        upgraded, ok = upgrade_v1_net(net)
        net.CopyFrom(upgraded)
        compatible &= ok
        if ok:
            logger.info('Successfully upgraded file specified using deprecated V1LayerParameter')
        else:
            logger.error('Warning: had one or more problems upgrading V1LayerParameter (see '
                         'above); continuing anyway.')
    if len(net.input):
        logger.info('Attempting to upgrade input file specified using deprecated '
                    'input fields: %s', source)
        upgrade_input_fields(net)
        logger.info('Successfully upgraded file specified using deprecated input fields.')
        logger.warning('Note that future Caffe releases will only support input layers and not '
                       'input fields.')
    if _needs_batchnorm_upgrade(net):
        logger.info('Attempting to upgrade batch norm layers using deprecated params: %s', source)
        upgrade_batchnorm(net)
        logger.info('Successfully upgraded batch norm layers using deprecated params.')
    return compatible


SOLVER_TYPE_NAMES = {'SGD': 'SGD', 'NESTEROV': 'Nesterov', 'ADAGRAD': 'AdaGrad',
                     'RMSPROP': 'RMSProp', 'ADADELTA': 'AdaDelta', 'ADAM': 'Adam'}


def upgrade_solver(solver, source='<solver>'):
    """Caffe's UpgradeSolverAsNeeded: the deprecated ``solver_type`` enum becomes the ``type`` string."""
    if not solver.HasField('solver_type'):
        return
    if solver.HasField('type'):
        raise ParseError('%s: Failed to upgrade solver: old solver_type field (enum) and new type '
                         'field (string) cannot be both specified in solver proto text.' % source)
    logger.info("Attempting to upgrade input file specified using deprecated 'solver_type' "
                "field (enum)': %s", source)
    solver.type = SOLVER_TYPE_NAMES[caffe_pb2.SolverParameter.SolverType.Name(solver.solver_type)]
    solver.ClearField('solver_type')
    logger.info("Successfully upgraded file specified using deprecated 'solver_type' field (enum) "
                "to 'type' field (string).")
    logger.warning("Note that future Caffe releases will only support 'type' field (string) for a "
                   "solver's type.")
