"""Which records a training process reads when several share one source (the Skip/Next pair of
Caffe's data_layer.cpp and hdf5_data_layer.cpp in multi-GPU training).

Record i (counted from the start of the source, and on across epochs) belongs to worker
``i mod count``; a worker skips the others' records, so no record is read twice per epoch. Only the
TRAIN phase is sharded: Caffe's test nets run on rank 0 alone and read every record. cct shards
ImageData lists the same way (Caffe 1.0 leaves them whole on every GPU).
"""
from cct import runtime
from cct.proto import caffe_pb2


class Shard:
    """Record ownership of one worker, fixed when its data layer is set up.

    Args:
        count: how many workers share the source (``runtime.solver_count()``).
        rank: this worker's index among them (``runtime.solver_rank()``).
    """

    def __init__(self, count=1, rank=0):
        if count < 1 or not 0 <= rank < count:
            raise ValueError('data shard %d of %d: the rank must lie in [0, count)' % (rank, count))
        self.count = count
        self.rank = rank
        self.offset = 0

    @classmethod
    def for_layer(cls, layer):
        """A data layer's shard: its process's solver rank and count in TRAIN, whole in TEST."""
        if layer.phase == caffe_pb2.TEST:
            return cls()
        return cls(runtime.solver_count(), runtime.solver_rank())

    def keep(self):
        """Whether the record at the current offset is this worker's."""
        return self.offset % self.count == self.rank

    def advance(self):
        self.offset += 1
