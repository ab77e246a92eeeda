/*
 * bench/alloc-writes.sh's loop: copies a file into a new one in 2 MiB pwrite()s from a
 * read-only mapping (as diskmorph's copy writes from its mapped source), either plainly
 * (mode 0) or with fallocate() of each write's range first (mode 1, what
 * FileStorage.allocateBeforeLargeWrites does). Prints the seconds the loop took and the
 * blocks the new file holds.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s SOURCE TARGET MODE(0|1)\n", argv[0]);
        return 2;
    }
    int allocate = atoi(argv[3]);
    int in = open(argv[1], O_RDONLY);
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0) {
        perror(argv[1]);
        return 1;
    }
    char *src = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, in, 0);
    int out = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (src == MAP_FAILED || out < 0) {
        perror("open/mmap");
        return 1;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    const long chunk = 2 << 20;
    for (long off = 0; off < st.st_size; off += chunk) {
        long n = st.st_size - off < chunk ? st.st_size - off : chunk;
        if (allocate && fallocate(out, 0, off, n) != 0) {
            perror("fallocate");
            return 1;
        }
        if (pwrite(out, src + off, n, off) != n) {
            perror("pwrite");
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    struct stat so;
    fstat(out, &so);
    printf("%.3f %ld\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9, (long) so.st_blocks * 512);
    return 0;
}
