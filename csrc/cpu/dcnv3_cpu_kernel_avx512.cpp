// The DCNv3 CPU kernels compiled for the avx512 instruction set; see dcnv3_cpu_kernel.h.
// Every header comes before the target pragma, so that no inline function
// shared with other translation units is compiled for this target.
#include <algorithm>
#include <cstdint>

#include "common/dcnv3_math.h"
#include "cpu/dcnv3_cpu_kernel_api.h"

#if DCNV3_CPU_X86_VARIANTS
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")
#define DCNV3_CPU_ISA avx512
#define DCNV3_CPU_VECTOR_BYTES 64
#include "cpu/dcnv3_cpu_kernel.h"
#endif
