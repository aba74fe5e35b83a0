"""Draw a net prototxt as a graph image (python/draw_net.py): ``cct draw NET.prototxt OUT.png``.

The image can also be named with ``--out OUT.png``, as ``cct plot`` names its own.

Layers are coloured boxes, blobs octagons (see ``cct.draw``). The output format follows OUT's
extension (png, svg, jpg, ...; .raw/.dot/.gv give the DOT text). Unlike draw_net.py, which reads the
prototxt as is, old V0/V1 nets are upgraded first, so they are drawn too.
"""
import os

from cct import io as cct_io
from cct.errors import CctError
from cct.proto import caffe_pb2
from cct.tools.common import output_path


def add_arguments(parser):
    parser.add_argument('input_net_proto_file', help='Input network prototxt file')
    parser.add_argument('output_image_file', nargs='?', default=None,
                        help='Output image file (or give it as --out)')
    parser.add_flag('out', default=None, help='Output image file (instead of the second argument)')
    parser.add_flag('rankdir', default='LR',
                    help='One of TB (top-bottom, i.e., vertical), LR (left-right), BT or RL: '
                         "Graphviz's rankdir (default LR)")
    parser.add_flag('phase', default='ALL',
                    help='Which network phase to draw: TRAIN, TEST, or ALL (default). With ALL, '
                         'every layer is drawn regardless of phase.')
    parser.add_flag('display_lrm', action='store_true',
                    help='Show the learning rate multipliers of Convolution, Deconvolution and '
                         'InnerProduct layers')


def run(args):
    from cct import draw
    phases = {'TRAIN': caffe_pb2.TRAIN, 'TEST': caffe_pb2.TEST, 'ALL': None}
    if args.phase not in phases:
        raise CctError('Unknown phase: %s (use TRAIN, TEST or ALL)' % args.phase)
    out = output_path(args.output_image_file, args.out, None)
    net = cct_io.read_net_text(args.input_net_proto_file)
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise CctError('output directory not found: %s' % out_dir)
    print('Drawing net to %s' % out)
    draw.draw_net_to_file(net, out, args.rankdir, phases[args.phase], args.display_lrm)

