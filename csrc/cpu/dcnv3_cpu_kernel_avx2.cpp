// The DCNv3 CPU kernels compiled for the avx2 instruction set; see dcnv3_cpu_kernel.h.
// Every header comes before the target pragma, so that no inline function
// shared with other translation units is compiled for this target.
#include <algorithm>
#include <cstdint>

#include "common/dcnv3_math.h"
#include "cpu/dcnv3_cpu_kernel_api.h"

#if DCNV3_CPU_X86_VARIANTS
#pragma GCC target("avx2,fma")
#define DCNV3_CPU_ISA avx2
#define DCNV3_CPU_VECTOR_BYTES 32
#include "cpu/dcnv3_cpu_kernel.h"
#endif
