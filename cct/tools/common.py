"""Flag handling the actions share: stages, phase and the GPU flags cct cannot honour yet (the
helpers of tools/caffe.cpp, for train/test/time/device_query), and the output file of draw/plot."""
from cct.errors import CctError
from cct.log import logger
from cct.proto import caffe_pb2

NO_GPU = ('cct has no GPU backend yet, so --gpu %s cannot be honoured; leave out --gpu to run on '
          'the CPU')


def add_net_state_flags(parser):
    parser.add_flag('level', type=int, default=0,
                    help='Optional; network level (NetState level for include/exclude rules)')
    parser.add_flag('stage', default='',
                    help='Optional; network stages (not to be confused with phase), separated by ,')


def add_gpu_flag(parser):
    parser.add_flag('gpu', default='',
                    help="Optional; run in GPU mode on given device IDs separated by ',' (cct has "
                         'no GPU backend yet: giving it is an error)')


def stages_from_flag(flag):
    """The --stage list. As Caffe's boost::split, an empty flag still gives one empty stage."""
    return flag.split(',')


def phase_from_flag(flag, default):
    if not flag:
        return default
    if flag not in ('TRAIN', 'TEST'):
        raise CctError('phase must be "TRAIN" or "TEST" (got %r)' % flag)
    return getattr(caffe_pb2, flag)


def use_cpu(gpu_flag, solver_param=None):
    """Refuse a requested GPU; say plainly when a solver file's solver_mode: GPU is overridden."""
    if gpu_flag:
        raise CctError(NO_GPU % gpu_flag)
    if solver_param is not None and solver_param.HasField('solver_mode') and \
            solver_param.solver_mode == caffe_pb2.SolverParameter.GPU:
        logger.warning('The solver file sets solver_mode: GPU, but cct has no GPU backend yet; '
                       'training on the CPU.')
    logger.info('Use CPU.')


def output_path(positional, flag, default):
    """The output file given either as the positional argument or as ``--out`` (not both, unless
    they agree); ``default`` when neither is given, and an error if that is None."""
    if positional is not None and flag is not None and positional != flag:
        raise CctError('two output files given: %s and --out %s (give one)' % (positional, flag))
    out = positional if positional is not None else flag if flag is not None else default
    if out is None:
        raise CctError('no output file given: name it as the last argument or with --out')
    return out
