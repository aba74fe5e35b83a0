"""BatchNorm + Scale time and peak memory of a zoo net in training, through ``cct time``.

The zoo's deploy prototxts (ResNet-50, MobileNet v1/v2) run BatchNorm with global statistics and end
in a Softmax; training is what costs. This writes the TRAIN version of one (an Input of the given
batch plus labels, ``use_global_stats`` dropped so the batch statistics are taken and
differentiated, ``force_backward`` off, the Softmax a SoftmaxWithLoss), runs ``cct time`` on it in
this process, and prints what BatchNorm and Scale cost per iteration and the process's peak RSS.

    python benchmarks/batch_norm_time.py mobilenet_v2:32 --iterations 3
    python benchmarks/batch_norm_time.py resnet50:16 --keep /tmp/resnet50_train.prototxt
"""
import argparse
import logging
import os
import re
import resource
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.abspath(os.environ.get('CCT_SHARED', os.path.join(HERE, '..', '..', 'shared')))
ZOO = {'resnet50': 'resnet50_deploy.prototxt', 'mobilenet': 'mobilenet_deploy.prototxt',
       'mobilenet_v2': 'mobilenet_v2_deploy.prototxt'}
# cct time's ranking rows, with or without its cores column: ms, share, layer type.
ROW = re.compile(r'\s*([\d.]+) ms\s+([\d.]+)%\s+(?:cores [\d.]+/\d+\s+)?\S+ \((\w+)\)')


def training_prototxt(name, batch):
    """The text of ``name``'s deploy net made a TRAIN net of ``batch`` images (224 x 224)."""
    from cct.io import read_net_text
    from cct.proto import caffe_pb2
    from google.protobuf import text_format
    param = read_net_text(os.path.join(SHARED, 'nets', 'zoo', ZOO[name]))
    del param.input[:], param.input_dim[:], param.input_shape[:]
    param.force_backward = False
    layers = list(param.layer)
    del param.layer[:]
    data = param.layer.add(name='data', type='Input', top=['data', 'label'])
    data.input_param.shape.add().dim.extend((batch, 3, 224, 224))
    data.input_param.shape.add().dim.append(batch)
    for layer in layers:
        if layer.type == 'Input':   # the deploy net's input fields, upgraded to a layer
            continue
        copy = param.layer.add()
        copy.CopyFrom(layer)
        if copy.type == 'BatchNorm':
            copy.batch_norm_param.ClearField('use_global_stats')
        elif copy.type == 'Softmax':
            copy.type = 'SoftmaxWithLoss'
            copy.bottom.append('label')
            copy.top[0] = 'loss'
    param.state.phase = caffe_pb2.TRAIN
    return text_format.MessageToString(param)


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('net', help='NAME:BATCH, NAME one of %s' % ', '.join(sorted(ZOO)))
    parser.add_argument('--iterations', type=int, default=3)
    parser.add_argument('--keep', help='also write the TRAIN prototxt here')
    args = parser.parse_args(argv)
    name, _, batch = args.net.partition(':')
    text = training_prototxt(name, int(batch or 16))
    path = args.keep or os.path.join(tempfile.mkdtemp(), name + '_train.prototxt')
    with open(path, 'w') as f:
        f.write(text)
    from cct.log import init_log, logger
    init_log()
    from cct.tools import time as cct_time
    lines = _Lines()
    logger.addHandler(lines)
    parser_args = argparse.Namespace(model=path, iterations=args.iterations, phase='', gpu='',
                                     level=0, stage='', devices='', split='')
    cct_time.run(parser_args)
    spent = {}
    for line in lines.lines:
        match = ROW.match(line)
        if match:
            kind = match.group(3)
            ms, share = spent.get(kind, (0.0, 0.0))
            spent[kind] = (ms + float(match.group(1)), share + float(match.group(2)))
        if 'Average Forward-Backward' in line or 'Passes keeping' in line:
            print(line)
    for kind in ('BatchNorm', 'Scale'):
        ms, share = spent.get(kind, (0.0, 0.0))
        print('%-10s %9.1f ms per iteration  %5.1f%%' % (kind, ms, share))
    both = [spent.get(k, (0.0, 0.0)) for k in ('BatchNorm', 'Scale')]
    print('%-10s %9.1f ms per iteration  %5.1f%%' % ('BN+Scale', sum(b[0] for b in both),
                                                      sum(b[1] for b in both)))
    print('peak RSS %.0f MB' % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


if __name__ == '__main__':
    sys.exit(main())
