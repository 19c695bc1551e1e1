/*
 * The pod sandbox's process for lakejob's local node (lakejob.local/pause): it holds the pod's
 * namespaces open and does nothing else. As PID 1 of the pod it reaps whatever child becomes a
 * zombie in it, and it exits 0 on SIGINT or SIGTERM (the kubelet's StopPodSandbox). Built by
 * images/build.py with `gcc -static -Os`, so the image needs no libc.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "lakejob-pause 3.10"

static void stop(int signo) {
    (void)signo;
    _exit(0);
}

static void reap(int signo) {
    (void)signo;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static int on(int signo, void (*handler)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    return sigaction(signo, &sa, NULL);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        puts(VERSION);
        return 0;
    }
    if (getpid() != 1) {
        fprintf(stderr, "pause: warning: not PID 1, will not reap the pod's orphans\n");
    }
    if (on(SIGINT, stop, 0) < 0 || on(SIGTERM, stop, 0) < 0 || on(SIGCHLD, reap, SA_NOCLDSTOP | SA_RESTART) < 0) {
        perror("pause: sigaction");
        return 1;
    }
    for (;;) {
        pause();
    }
    return 42; /* not reached */
}
