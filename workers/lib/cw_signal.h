/*
 * cw_signal: clean shutdown on SIGTERM/SIGINT.
 *
 * cw_signal_install() sets handlers that raise a flag and write a byte to
 * a self-pipe; a loop blocked in poll() can include cw_signal_fd() to
 * wake up at once. SIGPIPE is ignored (writes to closed sockets return
 * EPIPE instead of killing the worker).
 */

#ifndef CW_SIGNAL_H
#define CW_SIGNAL_H

/* Returns 0, or -1 if the pipe or handlers could not be set up. */
int cw_signal_install(void);

/* Non-zero once SIGTERM or SIGINT arrived (or cw_signal_request_stop). */
int cw_signal_stop_requested(void);

/* The number of the signal that asked to stop, 0 if none. */
int cw_signal_which(void);

/* Readable end of the self-pipe (non-blocking), -1 before install. */
int cw_signal_fd(void);

/* Empties the self-pipe after poll() reported it readable. */
void cw_signal_drain(void);

/* Asks the worker to stop from inside the program (fatal errors). */
void cw_signal_request_stop(void);

/* The flag itself, for APIs that take a volatile int * stop flag. */
volatile int *cw_signal_stop_flag(void);

#endif /* CW_SIGNAL_H */
