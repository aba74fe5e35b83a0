"""The nets a solver trains and tests, built from its SolverParameter (Solver::InitTrainNet,
InitTestNets and ShareTrainedLayersWith in Caffe's solver.cpp and net.cpp).

Rules that are easy to get wrong: exactly one of net/net_param/train_net/train_net_param names the
train net; test nets come from test_net_param, then test_net files, then one instance of the generic
net/net_param per test_iter entry left over; each net's NetState is the solver's default phase,
merged with the net's own ``state``, merged with train_state/test_state (highest precedence); every
``weights:`` entry (itself comma-separated) is loaded into the train net and into every test net.
Relative paths are read from the current directory, as Caffe does.
"""
import os

from cct import io as cct_io
from cct.blob import shape_string
from cct.errors import SolverError, WeightsError
from cct.log import logger
from cct.net import Net
from cct.proto import caffe_pb2

_TRAIN_FIELDS = ('net', 'net_param', 'train_net', 'train_net_param')


def _read_net(path, field, source):
    if not os.path.isfile(path):
        raise SolverError('%s: %s file not found: %s (relative paths are read from the current '
                          'directory, %s)' % (source, field, path, os.getcwd()))
    return cct_io.read_net_text(path)


def _make_net(param, net_param, phase, state, dtype, device=None, devices=None, split='auto'):
    merged = caffe_pb2.NetState(phase=phase)
    merged.MergeFrom(net_param.state)
    if state is not None:
        merged.MergeFrom(state)
    net_param.state.CopyFrom(merged)
    if devices is not None:
        from cct.parallel import HybridNet
        net = HybridNet(net_param, dtype=dtype, devices=devices, split=split)
    else:
        net = Net(net_param, dtype=dtype, device=device)
    for model_list in param.weights:
        for name in model_list.split(','):
            name = name.strip()
            logger.info('Finetuning from %s', name)
            net.copy_from(name)
    return net


def build_train_net(param, source, dtype, devices=None, split='auto'):
    """The train net of SolverParameter ``param`` (read from file ``source``); a HybridNet
    splitting each batch across ``devices`` when they are given."""
    given = [f for f in _TRAIN_FIELDS if param.HasField(f)]
    if len(given) != 1:
        raise SolverError('%s: SolverParameter must specify %s train net using one of these '
                          'fields: %s%s' % (source, 'a' if not given else 'only one',
                                           ', '.join(_TRAIN_FIELDS),
                                           ' (found %s)' % ', '.join(given) if given else ''))
    field = given[0]
    if field in ('train_net_param', 'net_param'):
        logger.info('Creating training net specified in %s.', field)
        net_param = caffe_pb2.NetParameter()
        net_param.CopyFrom(getattr(param, field))
    else:
        logger.info('Creating training net from %s file: %s', field, getattr(param, field))
        net_param = _read_net(getattr(param, field), field, source)
    return _make_net(param, net_param, caffe_pb2.TRAIN,
                     param.train_state if param.HasField('train_state') else None, dtype,
                     devices=devices, split=split)


def build_test_nets(param, source, dtype, device=None):
    """The test nets of ``param``, in Caffe's order (on ``device``, default the process's)."""
    num_test_nets = len(param.test_net_param) + len(param.test_net)
    generic = param.HasField('net') or param.HasField('net_param')
    if len(param.test_iter) < num_test_nets or \
            (not generic and len(param.test_iter) != num_test_nets):
        raise SolverError('%s: test_iter must be specified for each test network (%d test_iter for '
                          '%d test nets)' % (source, len(param.test_iter), num_test_nets))
    sources = [('test_net_param', 'test_net_param', net) for net in param.test_net_param]
    sources += [('test_net file: ' + path, 'test_net', path) for path in param.test_net]
    remaining = len(param.test_iter) - num_test_nets
    if param.HasField('net_param'):
        sources += [('net_param', 'net_param', param.net_param)] * remaining
    elif param.HasField('net'):
        sources += [('net file: ' + param.net, 'net', param.net)] * remaining
    if len(param.test_state) and len(param.test_state) != len(sources):
        raise SolverError('%s: test_state must be unspecified or specified once per test net (%d '
                          'test_state for %d test nets)' % (source, len(param.test_state),
                                                            len(sources)))
    if sources and param.test_interval <= 0:
        raise SolverError('%s: test_interval must be > 0 when there are test nets (got %d)'
                          % (source, param.test_interval))
    nets = []
    for i, (description, field, origin) in enumerate(sources):
        if isinstance(origin, str):
            net_param = _read_net(origin, field, source)
        else:
            net_param = caffe_pb2.NetParameter()
            net_param.CopyFrom(origin)
        logger.info('Creating test net (#%d) specified by %s', i, description)
        nets.append(_make_net(param, net_param, caffe_pb2.TEST,
                              param.test_state[i] if len(param.test_state) else None, dtype,
                              device=device))
    return nets


def share_trained_layers(test_net, train_net):
    """Make ``test_net``'s params use ``train_net``'s data, layer by layer (Caffe's
    ShareTrainedLayersWith, which logs the skipped layers only at debug level)."""
    for name, layer in zip(train_net.layer_names, train_net.layers):
        if not test_net.has_layer(name):
            continue
        targets = test_net.layer_by_name(name).blobs
        if len(targets) != len(layer.blobs):
            raise WeightsError("Incompatible number of blobs for layer '%s': %d in the test net, %d "
                               'in the train net' % (name, len(targets), len(layer.blobs)))
        for j, (target, source) in enumerate(zip(targets, layer.blobs)):
            if target.shares_data_with(source):
                continue
            if target.shape != source.shape:
                raise WeightsError("Cannot share param %d weights from layer '%s'; shape mismatch. "
                                   'Source param shape is %s; target param shape is %s'
                                   % (j, name, shape_string(source.shape),
                                      shape_string(target.shape)))
            target.share_data(source)
