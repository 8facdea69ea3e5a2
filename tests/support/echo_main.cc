// portico-echo: the demo upstream used by deploy/quickstart.sh and by the e2e tests. It
// answers every request with 200 and a JSON echo of what it received.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/support/echo_upstream.h"

int main(int argc, char** argv) {
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--port=", 0) == 0) {
      port = std::atoi(arg.c_str() + 7);
    } else {
      std::fprintf(stderr, "usage: portico-echo --port=N\n");
      return 2;
    }
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  try {
    portico::testing::EchoUpstream upstream(port, /*record=*/false);
    std::printf("portico-echo listening on 127.0.0.1:%d\n", upstream.port());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "portico-echo: %s\n", e.what());
    return 1;
  }
  return 0;
}
