#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    printf("hello from a static C binary in a scratch image (host %s, pid %d)\n", host, (int)getpid());
    for (int i = 1; i < argc; i++)
        printf("arg %d: %s\n", i, argv[i]);
    return 0;
}
