/* serve.h — `llmmeter serve`: this user's budgets over HTTP, for the
 * monitoring systems that scrape an endpoint rather than run a command.
 */
#ifndef LM_SERVE_H
#define LM_SERVE_H

#define LM_SERVE_DEFAULT_LISTEN "127.0.0.1:9464"

/* Parses `serve`'s flags (argv[2..]) and serves until SIGTERM or SIGINT;
 * returns an enum lm_exit code (0 after a clean shutdown). */
int lm_cli_serve(int argc, char **argv);

#endif
