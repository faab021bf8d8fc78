#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include "CSysShim.h"

int ceti_birth_time(const char *path, int64_t *seconds, uint32_t *nanoseconds) {
    struct statx st;
    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BTIME, &st) != 0) return -1;
    if (!(st.stx_mask & STATX_BTIME)) return -1;
    *seconds = st.stx_btime.tv_sec;
    *nanoseconds = st.stx_btime.tv_nsec;
    return 0;
}
