/* mod_outer.c — a module without libcurl that dlopen()s another one.
 *
 * Loaded with RTLD_DEEPBIND, its own reference to dlopen binds straight to
 * libc's, bypassing the preload's dlopen wrapper; the interposer must
 * rewrite that slot so that what it loads (a DEEPBIND curl module) is still
 * seen and patched.
 */
#include <dlfcn.h>

__attribute__((visibility("default"))) void *outer_dlopen(const char *path,
                                                          int flags);

void *outer_dlopen(const char *path, int flags) { return dlopen(path, flags); }
