"""Flag handling the actions share (the helpers of tools/caffe.cpp): stages, phase, and the device
(--gpu, solver_mode, CCT_DEVICE) for train/test/time/device_query, and the output file of draw/plot."""
import os

from cct import devices, runtime
from cct.errors import CctError, DeviceError
from cct.log import logger
from cct.proto import caffe_pb2


def add_net_state_flags(parser):
    parser.add_flag('level', type=int, default=0,
                    help='Optional; network level (NetState level for include/exclude rules)')
    parser.add_flag('stage', default='',
                    help='Optional; network stages (not to be confused with phase), separated by ,')


def add_gpu_flag(parser):
    parser.add_flag('gpu', default='',
                    help="Optional; run in GPU mode on the given device ID (CUDA devices are "
                         "numbered first, then OpenCL devices; 'all' when there is one); "
                         'CCT_DEVICE=cpu|opencl:N|cuda:N overrides it')


def add_devices_flags(parser):
    group = parser.add_argument_group('hybrid execution (Caffe con Troll\'s batch split)')
    group.add_argument('-devices', '--devices', default='',
                       help='Split each batch across these devices, e.g. cpu,opencl:0 (a replica '
                            'of the net on each, gradients summed, one update); the first holds '
                            'the weights and runs the test nets')
    group.add_argument('-split', '--split', default='',
                       help='With --devices: "auto" (default; measured throughput) or one '
                            'fraction per device adding up to 1, e.g. 0.75,0.25')


def hybrid_devices(args):
    """The Devices --devices names (None without it), the first made the process's device so
    that every other net (the solver's test nets) runs there; --split without --devices, or
    with --gpu, is an error."""
    if not args.devices:
        if args.split:
            raise CctError('--split needs --devices (the devices to split each batch across)')
        return None
    if args.gpu:
        raise CctError('give --gpu (one device) or --devices (a batch split across several), '
                       'not both')
    from cct.parallel import parse_devices
    chosen = parse_devices(args.devices)
    if chosen[0].host:
        runtime.set_mode_cpu()
    else:
        runtime.use_device(chosen[0])
    logger.info('Splitting each batch across %s (split %s)',
                ', '.join('%s (%s)' % (d, d.describe()['name']) for d in chosen),
                args.split or 'auto')
    return chosen


def stages_from_flag(flag):
    """The --stage list. As Caffe's boost::split, an empty flag still gives one empty stage."""
    return flag.split(',')


def phase_from_flag(flag, default):
    if not flag:
        return default
    if flag not in ('TRAIN', 'TEST'):
        raise CctError('phase must be "TRAIN" or "TEST" (got %r)' % flag)
    return getattr(caffe_pb2, flag)


def gpu_ids(flag):
    """Caffe's --gpu value as a list of ordinals ('all' is every accelerator there is)."""
    if flag == 'all':
        count = len(devices.device_names()) - 1
        if count == 0:
            devices.accelerator_name(0)   # raises, saying why there is none
        return list(range(count))
    try:
        return [int(part) for part in flag.split(',')]
    except ValueError:
        raise CctError('--gpu takes device IDs separated by commas or "all", got %r'
                       % flag) from None


def use_device(gpu_flag, solver_param=None):
    """Choose the process's device as Caffe's tool does (--gpu, else the solver's solver_mode: GPU
    with device_id, else the CPU; CCT_DEVICE overrides all), set it for every net made from now
    on, and log once which device runs, with its name. Returns the Device."""
    ordinal = None
    if gpu_flag:
        ids = gpu_ids(gpu_flag)
        if len(ids) != 1:
            raise DeviceError('cct runs one device per process; --gpu %s names %d (accelerators '
                              'here: %s)' % (gpu_flag, len(ids),
                                             ', '.join(devices.device_names()[1:]) or 'none'))
        ordinal = ids[0]
    elif solver_param is not None and solver_param.HasField('solver_mode') and \
            solver_param.solver_mode == caffe_pb2.SolverParameter.GPU:
        ordinal = solver_param.device_id
    forced = os.environ.get('CCT_DEVICE')
    if forced:
        device = devices.get_device(forced)
        logger.info('Using device %s (CCT_DEVICE): %s', device, device.describe()['name'])
    elif ordinal is None:
        device = devices.get_device('cpu')
        logger.info('Use CPU.')
    else:
        device = devices.get_device(devices.accelerator_name(ordinal))
        logger.info('Using GPUs %d', ordinal)
        logger.info('GPU %d: %s (%s)', ordinal, device.describe()['name'], device)
    if device.host:
        runtime.set_mode_cpu()
    else:
        runtime.use_device(device)
    return device


def output_path(positional, flag, default):
    """The output file given either as the positional argument or as ``--out`` (not both, unless
    they agree); ``default`` when neither is given, and an error if that is None."""
    if positional is not None and flag is not None and positional != flag:
        raise CctError('two output files given: %s and --out %s (give one)' % (positional, flag))
    out = positional if positional is not None else flag if flag is not None else default
    if out is None:
        raise CctError('no output file given: name it as the last argument or with --out')
    return out
