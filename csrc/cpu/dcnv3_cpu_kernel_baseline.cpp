// The DCNv3 CPU kernels compiled for the baseline instruction set; see dcnv3_cpu_kernel.h.
// Every header comes before the target pragma, so that no inline function
// shared with other translation units is compiled for this target.
#include <algorithm>
#include <cstdint>

#include "common/dcnv3_math.h"
#include "cpu/dcnv3_cpu_kernel_api.h"

#define DCNV3_CPU_ISA baseline
#define DCNV3_CPU_VECTOR_BYTES 16
#include "cpu/dcnv3_cpu_kernel.h"
