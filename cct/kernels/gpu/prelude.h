/* cct's kernel prelude: one spelling of kernels for OpenCL C (PyOpenCL, PoCL) and CUDA C (NVRTC).
 *
 * Every kernel source under cct/kernels/gpu is compiled with this text in front of it and with REAL
 * defined as float or double (-DREAL=...). Index arithmetic is in int: the runtime refuses arrays of
 * 2^31 elements or more before launching. Kernels loop over their work with KERNEL_LOOP (Caffe's
 * CUDA_KERNEL_LOOP), so any launch size covers any problem size.
 */
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define CCT_CUDA 1
#define KERNEL extern "C" __global__ void
#define GLOBAL
#define LOCAL __shared__
#define DEVICE_FN __device__ static inline
#define CCT_PICK(v, d) ((d) == 0 ? (v).x : ((d) == 1 ? (v).y : (v).z))
#define LOCAL_ID(d) ((int)CCT_PICK(threadIdx, d))
#define GROUP_ID(d) ((int)CCT_PICK(blockIdx, d))
#define LOCAL_SIZE(d) ((int)CCT_PICK(blockDim, d))
#define NUM_GROUPS(d) ((int)CCT_PICK(gridDim, d))
#define GLOBAL_ID(d) (GROUP_ID(d) * LOCAL_SIZE(d) + LOCAL_ID(d))
#define GLOBAL_SIZE(d) (NUM_GROUPS(d) * LOCAL_SIZE(d))
#define LOCAL_BARRIER __syncthreads()
#define ATOMIC_ADD_INT(p, v) atomicAdd((p), (v))
#define ATOMIC_MAX_INT(p, v) atomicMax((p), (v))
#define MUL_HI_U32(a, b) __umulhi((a), (b))
typedef unsigned int cct_u32;
typedef unsigned long long cct_u64;
#else
#define CCT_OPENCL 1
#if defined(CCT_DOUBLE)
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
#define KERNEL __kernel void
#define GLOBAL __global
#define LOCAL __local
#define DEVICE_FN static inline
#define LOCAL_ID(d) ((int)get_local_id(d))
#define GROUP_ID(d) ((int)get_group_id(d))
#define LOCAL_SIZE(d) ((int)get_local_size(d))
#define NUM_GROUPS(d) ((int)get_num_groups(d))
#define GLOBAL_ID(d) ((int)get_global_id(d))
#define GLOBAL_SIZE(d) ((int)get_global_size(d))
#define LOCAL_BARRIER barrier(CLK_LOCAL_MEM_FENCE)
#define ATOMIC_ADD_INT(p, v) atomic_add((volatile GLOBAL int *)(p), (v))
#define ATOMIC_MAX_INT(p, v) atomic_max((volatile GLOBAL int *)(p), (v))
#define MUL_HI_U32(a, b) mul_hi((uint)(a), (uint)(b))
typedef uint cct_u32;
typedef ulong cct_u64;
#endif

#ifndef REAL
#error "REAL must be defined (float or double) when a cct kernel source is compiled"
#endif

/* The largest finite REAL: Caffe's -FLT_MAX start of a running maximum. */
#if defined(CCT_DOUBLE)
#define REAL_MAX 1.7976931348623157e308
#else
#define REAL_MAX 3.402823466e38f
#endif

#define KERNEL_LOOP(i, n) for (int i = GLOBAL_ID(0); i < (n); i += GLOBAL_SIZE(0))

/* Work-group size of the kernels that reduce in local memory (the runtime launches them so). */
#define REDUCE_SIZE 64

/* Every array parameter travels with its offset in elements, so kernels can run on views
 * (1-D slices of a blob, one image of a batch) without sub-buffers: ARRAY(const REAL, x) declares
 * the pair and OFFSET(x) moves the pointer to the view's start. */
#define ARRAY(type, name) GLOBAL type *name, const int name##_offset
#define OFFSET(name) name += name##_offset
