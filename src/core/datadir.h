/*
 * datadir.h - where loramix finds its bundled data files (today only the
 * CLIP BPE merges, clip/bpe_simple_vocab_16e6.txt.gz).
 *
 * Search order for a relative name such as "clip/bpe_simple_vocab_16e6.txt.gz":
 *   1. $LMX_DATA_DIR/<name>: when the variable is set (and not empty) it is
 *      the only place looked at, so a wrong setting is reported, not hidden;
 *   2. <directory of the running executable>/../share/loramix/<name> (an
 *      installed tree: bin/loramix next to share/loramix/);
 *   3. LMX_DEFAULT_DATA_DIR/<name>, a compile-time define that CMake sets to
 *      <source>/data (a build tree).
 * Thread-safe: nothing is cached.
 */
#ifndef LMX_DATADIR_H
#define LMX_DATADIR_H

#include "core/core.h"

/* Find the readable data file `rel` (no leading '/', no ".." component) and
 * write its path into out[cap]. LMX_ERR_IO when it is nowhere, with a message
 * listing every place tried; LMX_ERR_ARG for a bad name or a small buffer. */
lmx_status lmx_data_find(const char *rel, char *out, size_t cap);

#endif /* LMX_DATADIR_H */
