"""Fixtures of the device tests (defined in opencl_support.py): ``accel`` (opencl:0 and cuda:0 for
the session, each a skip saying why where it does not exist), ``ocl`` (opencl:0 alone, for the
OpenCL runtime's own tests), ``cpu`` (the reference device) and ``each_gemm`` (both GEMM kernels)."""
from opencl_support import accel, cpu, each_gemm, ocl  # noqa: F401  (fixtures, found by name)
