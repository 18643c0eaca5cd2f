/*
 * Files for unit tests (include after cmocka.h).
 *
 *   path = unit_write_file("key = value\n");    a new file in /tmp
 *   ...
 *   unlink(path);
 */

#ifndef UNIT_FILE_H
#define UNIT_FILE_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* Writes text to a new temporary file; the path stays valid until the
 * next call. */
static char *
unit_write_file(const char *text)
{
    static char  path[64];
    int          fd;

    strcpy(path, "/tmp/cw_unit_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (int) strlen(text));
    close(fd);
    return path;
}

#endif /* UNIT_FILE_H */
