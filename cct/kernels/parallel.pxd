"""When a flat pass is worth splitting across cores (the kernels' prange regions, and the CPU
device's choice between these kernels and numpy)."""

cdef enum:
    # Below this many values a pass runs on the calling thread: waking the others costs more
    # (LeNet's ReLU, 32000 values, took 70 us a pass across the cores; its and CIFAR-10 quick's
    # small blobs' SGD steps 0.65 ms per update across 8-10 parallel regions).
    PARALLEL_MIN = 32768
