/* cli.c - see cli.h. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "store.h"

static int report(const cli *c, int code, const char *cmd, const char *fmt, va_list ap)
{
    char msg[1200];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* sandbox_call appends a Lua traceback to a script's error: the user
     * gets the clear error alone, the frames only with PRMCAST_LOG=debug
     * (the jobs table keeps the whole message). */
    const char *lvl = getenv("PRMCAST_LOG");
    char *tb = strstr(msg, "\nstack traceback:");
    if (tb && !(lvl && strcmp(lvl, "debug") == 0)) *tb = 0;
    if (c && c->json) {
        json j;
        json_init(&j);
        json_obj(&j);
        json_key(&j, "ok");
        json_bool(&j, 0);
        json_key(&j, "command");
        json_str(&j, cmd);
        json_key(&j, "error");
        json_str(&j, msg);
        json_key(&j, "exit");
        json_int(&j, code);
        json_end(&j);
        printf("%s\n", json_cstr(&j));
        json_free(&j);
    }
    fprintf(stderr, "prmcast %s: %s\n", cmd, msg);
    if (code == EXIT_USAGE && !(c && c->json)) fprintf(stderr, "(see 'prmcast %s --help')\n", cmd);
    return code;
}

int cli_usage(const cli *c, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = report(c, EXIT_USAGE, cmd, fmt, ap);
    va_end(ap);
    return rc;
}

int cli_fail(const cli *c, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = report(c, EXIT_FAIL, cmd, fmt, ap);
    va_end(ap);
    return rc;
}

store *cli_store(const cli *c, int create, prm_error *err)
{
    const char *path = c->db_path;
    struct stat st;
    if (!create && stat(path, &st) != 0) {
        prm_error_set(err, "no store at %s (create one with 'prmcast init', or give --db PATH)", path);
        return NULL;
    }
    store *s;
    if (store_open(path, &s, err) < 0) return NULL;
    return s;
}

void cli_text(FILE *f, const char *s, int width)
{
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)(s ? s : "-"); *p; p++) {
        if (width > 0 && n >= width) break;
        if (cli_text_unsafe(*p)) {
            n += fprintf(f, "\\x%02x", *p);
        } else {
            fputc(*p, f);
            n++;
        }
    }
    for (; width > 0 && n < width; n++) fputc(' ', f);
}

void cli_lines(FILE *f, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p; p++) {
        if (cli_text_unsafe(*p) && *p != '\n' && *p != '\t') fprintf(f, "\\x%02x", *p);
        else fputc(*p, f);
    }
}

int cli_int(const cli *c, const char *cmd, const char *opt, const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = text ? strtol(text, &end, 10) : 0;
    if (!text || !*text || *end || errno || v < lo || v > hi) {
        cli_usage(c, cmd, "%s needs a whole number from %ld to %ld, not '%s'", opt, lo, hi,
                  text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

void cli_progress(const cli *c, const char *fmt, ...)
{
    if (!c || !c->progress) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("prmcast: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
}
