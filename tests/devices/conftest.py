"""Fixtures of the device tests (defined in opencl_support.py): ``ocl`` (opencl:0 for the session, or
a skip saying why there is none), ``cpu`` (the reference device) and ``each_gemm`` (both GEMM kernels)."""
from opencl_support import cpu, each_gemm, ocl  # noqa: F401  (fixtures, found by name)
