#ifndef CETI_SYS_SHIM_H
#define CETI_SYS_SHIM_H
#include <stdint.h>

// statx(2) needs _GNU_SOURCE, which Swift's Glibc module does not define.
// Returns 0 and the birth time when the filesystem records one, -1 otherwise.
int ceti_birth_time(const char *path, int64_t *seconds, uint32_t *nanoseconds);

#endif
