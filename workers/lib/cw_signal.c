/*
 * cw_signal: stop flag plus self-pipe.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cw_signal.h"


static volatile sig_atomic_t  cw_sig_which;
static volatile int           cw_sig_stop;
static int                    cw_sig_pipe[2] = { -1, -1 };


/* Only async-signal-safe calls here: a store and a write. */
static void
cw_signal_handler(int signo)
{
    int   saved = errno;
    char  c = 1;

    cw_sig_which = signo;
    cw_sig_stop = 1;
    if (cw_sig_pipe[1] >= 0) {
        (void) !write(cw_sig_pipe[1], &c, 1);
    }
    errno = saved;
}


int
cw_signal_install(void)
{
    struct sigaction  sa;

    if (cw_sig_pipe[0] < 0) {
        if (pipe2(cw_sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
            return -1;
        }
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cw_signal_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0
        || sigaction(SIGINT, &sa, NULL) != 0)
    {
        return -1;
    }
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0) {
        return -1;
    }
    return 0;
}


int
cw_signal_stop_requested(void)
{
    return cw_sig_stop;
}


int
cw_signal_which(void)
{
    return (int) cw_sig_which;
}


int
cw_signal_fd(void)
{
    return cw_sig_pipe[0];
}


void
cw_signal_drain(void)
{
    char  buf[64];

    if (cw_sig_pipe[0] < 0) {
        return;
    }
    while (read(cw_sig_pipe[0], buf, sizeof(buf)) > 0) {
        /* empty */
    }
}


void
cw_signal_request_stop(void)
{
    char  c = 1;

    cw_sig_stop = 1;
    if (cw_sig_pipe[1] >= 0) {
        (void) !write(cw_sig_pipe[1], &c, 1);
    }
}


volatile int *
cw_signal_stop_flag(void)
{
    return &cw_sig_stop;
}
