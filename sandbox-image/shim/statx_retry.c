/* Preloaded into every sandbox process (/etc/ld.so.preload).

   The gVisor that Debian ships (runsc 20221219) refuses statx() with AT_NO_AUTOMOUNT with
   EINVAL, and coreutils passes that flag on every call: `ls`, `stat`, `cp -a` and friends
   fail with "Invalid argument" on every path. A sandbox has no automount points, so the flag
   changes nothing there: when a call that carries it fails with EINVAL, it is made again
   without it. Under runc the first call succeeds and nothing else happens. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf) {
    long result = syscall(SYS_statx, dirfd, path, flags, mask, buf);
    if (result == -1 && errno == EINVAL && (flags & AT_NO_AUTOMOUNT)) {
        result = syscall(SYS_statx, dirfd, path, flags & ~AT_NO_AUTOMOUNT, mask, buf);
    }
    return (int)result;
}
