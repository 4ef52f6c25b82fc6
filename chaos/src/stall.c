/* Preloaded into a node by chaos/ for the stall-disk step: while the file
 * named by WARREN_STALL_FILE exists, every fsync-family call blocks, as
 * on a disk whose flushes stop returning. Everything else goes through. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static void wait_while_stalled(void) {
    const char *flag = getenv("WARREN_STALL_FILE");
    if (flag == NULL) {
        return;
    }
    while (access(flag, F_OK) == 0) {
        usleep(20000);
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    wait_while_stalled();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    }
    wait_while_stalled();
    return real(fd);
}

int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags) {
    static int (*real)(int, off64_t, off64_t, unsigned int);
    if (real == NULL) {
        real = (int (*)(int, off64_t, off64_t, unsigned int))dlsym(RTLD_NEXT, "sync_file_range");
    }
    wait_while_stalled();
    return real(fd, offset, nbytes, flags);
}
